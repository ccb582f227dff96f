// Package client is the Go SDK of the ledger.
//
// A Client asks the ledger's request/reply service (checks, quotas, usage
// totals) and returns the ledger's typed errors: test them with
// errors.Is(err, events.ErrQuotaExceeded) or errors.As(err, &*events.Error).
// Share one Client: the Reserve, Reconcile and Release calls that its
// goroutines make at the same time go out together in batch requests (one
// round trip for many calls, one fenced append per tenant), and each call
// still gets its own answer.
//
// When the ledger does not answer (no responders, no reply within
// WithTimeout, a closed or draining connection, or the ledger's own
// unavailable code), a call fails closed by default: its error matches
// errors.Is(err, ErrUnavailable). WithFailurePolicy(FailOpen) answers the
// decision calls (Check, Consume, LimitAction, Reserve) as allowed instead,
// with the reply's Degraded set and a nil error, and counts them in
// Client.Degraded. Answers are never changed: a denial, a bad request or a
// conflict is returned under either policy.
//
// A Producer publishes usage events straight to the ledger stream,
// asynchronously and in batches: one stream message per batch of one
// tenant's events, identified by a hash of their IDs so a retried batch is
// deduplicated by the stream, while each event's own ID is deduplicated by
// the projection, so a retry after a producer restart is never counted twice.
// A producer that outruns the server blocks in Record (bounded memory)
// instead of dropping events.
package client
