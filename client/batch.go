package client

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/ledgerworks/ledger/api"
	"github.com/ledgerworks/ledger/events"
)

// maxBatchesInFlight is how many batch requests a client has waiting for
// their replies at once, all tenants together. One would serialise a busy
// client on one round trip; a few keep the connection busy while each
// still gathers every call that arrived during the last round trip.
const maxBatchesInFlight = 4

// batcher sends a client's reserves, reconciles and releases to the
// service's batch endpoint. A batch carries one tenant's calls, since it
// goes to the tenant's subject and so to the owner of the tenant's
// partition, but the client's batches in flight are counted together: a
// call leaves at once while fewer than maxBatchesInFlight batches wait for
// replies; otherwise it queues with its tenant's calls, and when a reply
// comes back the tenant that has waited longest sends all its queued calls
// as the next batch. An idle client so sends each call alone, with no added
// wait, and a busy one sends one request per round trip for each tenant's
// calls that arrived meanwhile: the service then decides them as one group,
// with one fenced append. Where nobody answers on the batch subject, each
// call goes on its own.
type batcher struct {
	c *Client

	mu       sync.Mutex
	queues   map[string]*tenantCalls // tenants with queued calls
	ready    []*tenantCalls          // queues waiting for a batch to leave, oldest first
	inFlight int
}

// tenantCalls are one tenant's queued calls.
type tenantCalls struct {
	tenant, subject string
	calls           []*batchCall
}

type batchCall struct {
	ctx  context.Context
	op   api.BatchOp
	done chan struct{}
	res  api.BatchResult
	err  error
}

// batchOp sends op for tenant in a batch and returns its result, or its
// typed error.
func (c *Client) batchOp(ctx context.Context, tenant string, op api.BatchOp) (api.BatchResult, error) {
	if err := checkTenant(tenant); err != nil {
		return api.BatchResult{}, err
	}
	return c.batch.do(ctx, tenant, op)
}

// do sends op in a batch of tenant's and returns its result, or its typed
// error.
func (b *batcher) do(ctx context.Context, tenant string, op api.BatchOp) (api.BatchResult, error) {
	if err := ctx.Err(); err != nil {
		return api.BatchResult{}, stopped(err)
	}
	call := &batchCall{ctx: ctx, op: op, done: make(chan struct{})}
	b.mu.Lock()
	q := b.queues[tenant]
	if q == nil {
		if b.queues == nil {
			b.queues = map[string]*tenantCalls{}
		}
		q = &tenantCalls{tenant: tenant, subject: api.TenantSubject(api.SubjectBatch, tenant)}
		b.queues[tenant] = q
		b.ready = append(b.ready, q)
	}
	q.calls = append(q.calls, call)
	var (
		next  *tenantCalls
		batch []*batchCall
	)
	if b.inFlight < maxBatchesInFlight {
		b.inFlight++
		next, batch = b.take()
	}
	b.mu.Unlock()
	if next != nil {
		go b.send(next.subject, batch)
	}
	select {
	case <-call.done:
		return call.res, call.err
	case <-ctx.Done():
		// Still queued, it is dropped before it leaves; sent, it may be
		// decided, like a request whose reply was lost.
		return api.BatchResult{}, stopped(ctx.Err())
	}
}

// stopped is the error of a call whose context ended, as call returns it: a
// deadline is the ledger not answering in time (typed unavailable), a
// cancellation is the caller's own (errors.Is(err, context.Canceled)).
func stopped(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return &events.Error{Code: events.CodeUnavailable, Message: "the ledger did not answer in time on " + api.SubjectBatch, Suggestion: "retry with the same reservation id: the retry is answered, not applied twice"}
	}
	return fmt.Errorf("%s: %w", api.SubjectBatch, err)
}

// take removes the longest-waiting tenant's queue and returns up to
// api.MaxBatchOps of its calls, leaving out those whose caller has stopped
// waiting; the rest of a longer queue waits again, last. It returns nil
// when no call is queued. b.mu is held.
func (b *batcher) take() (*tenantCalls, []*batchCall) {
	if len(b.ready) == 0 {
		return nil, nil
	}
	q := b.ready[0]
	b.ready[0] = nil
	b.ready = b.ready[1:]
	n := min(len(q.calls), api.MaxBatchOps)
	batch := make([]*batchCall, 0, n)
	for _, call := range q.calls[:n] {
		if call.ctx.Err() == nil {
			batch = append(batch, call)
		}
	}
	q.calls = q.calls[n:]
	if len(q.calls) > 0 {
		b.ready = append(b.ready, q)
	} else {
		delete(b.queues, q.tenant)
	}
	return q, batch
}

// send sends batch to subject, then the batches that queued meanwhile,
// until no call is queued.
func (b *batcher) send(subject string, batch []*batchCall) {
	for {
		if len(batch) > 0 {
			b.roundTrip(subject, batch)
		}
		b.mu.Lock()
		var next *tenantCalls
		next, batch = b.take()
		if next == nil {
			b.inFlight--
			b.mu.Unlock()
			return
		}
		subject = next.subject
		b.mu.Unlock()
	}
}

// roundTrip sends one batch request and hands each call its result.
func (b *batcher) roundTrip(subject string, batch []*batchCall) {
	req := api.BatchRequest{Ops: make([]api.BatchOp, len(batch))}
	for i, call := range batch {
		req.Ops[i] = call.op
	}
	var reply api.BatchReply
	// Bounded by the client's timeout: the batch serves several callers,
	// each of which stops waiting at its own deadline.
	noBatches, err := b.c.exchange(context.Background(), subject, &req, &reply)
	if noBatches {
		b.singles(batch)
		return
	}
	if err == nil && len(reply.Results) != len(batch) {
		err = &events.Error{Code: events.CodeInternal, Message: fmt.Sprintf("the batch reply has %d results for %d operations", len(reply.Results), len(batch))}
	}
	for i, call := range batch {
		switch {
		case err != nil:
			call.err = err
		case reply.Results[i].Error != nil:
			call.err = reply.Results[i].Error
		default:
			call.res = reply.Results[i]
		}
		close(call.done)
	}
}

// singles sends each call of a batch on its own subject, for a ledger that
// has no batch endpoint yet (a client upgraded before its servers). The
// calls of one batch are independent (a caller's next call waits for this
// one's answer), so they go out at once. The next batch tries the batch
// endpoint again: a refused request costs one round trip.
func (b *batcher) singles(batch []*batchCall) {
	var wg sync.WaitGroup
	for _, call := range batch {
		wg.Add(1)
		go func() {
			defer wg.Done()
			call.res, call.err = b.c.single(call.ctx, call.op)
			close(call.done)
		}()
	}
	wg.Wait()
}

// single sends one batch operation as its own request.
func (c *Client) single(ctx context.Context, op api.BatchOp) (api.BatchResult, error) {
	switch {
	case op.Reserve != nil:
		var r api.ReserveReply
		err := c.callFor(ctx, api.SubjectReserve, op.Reserve.Tenant, op.Reserve, &r)
		return api.BatchResult{Reserve: &r}, err
	case op.Reconcile != nil:
		var r api.DecisionReply
		err := c.callFor(ctx, api.SubjectReconcile, op.Reconcile.Tenant, op.Reconcile, &r)
		return api.BatchResult{Decision: &r}, err
	case op.Release != nil:
		var r api.DecisionReply
		err := c.callFor(ctx, api.SubjectRelease, op.Release.Tenant, op.Release, &r)
		return api.BatchResult{Decision: &r}, err
	}
	return api.BatchResult{}, &events.Error{Code: events.CodeInternal, Message: "a batch operation with nothing to send"}
}
