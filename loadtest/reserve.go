package loadtest

import "context"

// reserve: reserve+reconcile pairs per second with Concurrency callers over
// ReserveAccounts accounts and over one hot account, against raw JetStream
// async (and, beside it, sync) publish. It needs the service's reservation
// requests, which are not in the API yet.
func (e *env) reserve(ctx context.Context) error {
	e.notef("reserve: not available: the ledger has no reserve/reconcile request yet (api.SubjectReserve)")
	return nil
}
