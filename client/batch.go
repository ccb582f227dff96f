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
// their replies at once. One would serialise a busy client on one round
// trip; a few keep the connection busy while each still gathers every call
// that arrived during the last round trip.
const maxBatchesInFlight = 4

// batchers are a client's batchers, one per tenant: a batch goes to its
// tenant's subject, and so to the owner of the tenant's partition.
type batchers struct {
	c  *Client
	mu sync.Mutex
	m  map[string]*batcher
}

// batchOp sends op for tenant in a batch and returns its result, or its
// typed error.
func (c *Client) batchOp(ctx context.Context, tenant string, op api.BatchOp) (api.BatchResult, error) {
	if err := checkTenant(tenant); err != nil {
		return api.BatchResult{}, err
	}
	bs := &c.batches
	bs.mu.Lock()
	b := bs.m[tenant]
	if b == nil {
		if bs.m == nil {
			bs.m = map[string]*batcher{}
		}
		b = &batcher{c: bs.c, tenant: tenant, subject: api.TenantSubject(api.SubjectBatch, tenant)}
		bs.m[tenant] = b
	}
	bs.mu.Unlock()
	return b.do(ctx, op)
}

// forget drops b once it is idle, so that a client that has talked to
// many tenants does not keep a batcher for each. A call that still holds b
// works on; the tenant's next call makes a new one.
func (bs *batchers) forget(b *batcher) {
	bs.mu.Lock()
	if bs.m[b.tenant] == b {
		delete(bs.m, b.tenant)
	}
	bs.mu.Unlock()
}

// batcher sends a client's reserves, reconciles and releases for one tenant
// to the service's batch endpoint. A call leaves at once while fewer than
// maxBatchesInFlight batches wait for replies; otherwise it joins the next
// batch, which leaves as soon as a reply comes back. An idle client so sends
// each call alone, with no added wait, and a busy one sends one request per
// round trip for all the calls that arrived meanwhile: the service then
// decides each tenant's calls as one group, with one fenced append. Where
// nobody answers on the batch subject, each call goes on its own.
type batcher struct {
	c       *Client
	tenant  string
	subject string

	mu       sync.Mutex
	queue    []*batchCall
	inFlight int
}

type batchCall struct {
	ctx  context.Context
	op   api.BatchOp
	done chan struct{}
	res  api.BatchResult
	err  error
}

// do sends op in a batch and returns its result, or its typed error.
func (b *batcher) do(ctx context.Context, op api.BatchOp) (api.BatchResult, error) {
	if err := ctx.Err(); err != nil {
		return api.BatchResult{}, stopped(err)
	}
	call := &batchCall{ctx: ctx, op: op, done: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, call)
	var batch []*batchCall
	if b.inFlight < maxBatchesInFlight {
		b.inFlight++
		batch = b.take()
	}
	b.mu.Unlock()
	if batch != nil {
		go b.send(batch)
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

// take removes up to api.MaxBatchOps calls from the queue, leaving out
// those whose caller has stopped waiting. b.mu is held.
func (b *batcher) take() []*batchCall {
	n := min(len(b.queue), api.MaxBatchOps)
	batch := make([]*batchCall, 0, n)
	for _, call := range b.queue[:n] {
		if call.ctx.Err() == nil {
			batch = append(batch, call)
		}
	}
	rest := copy(b.queue, b.queue[n:])
	clear(b.queue[rest:])
	b.queue = b.queue[:rest]
	return batch
}

// send sends batch, then the batches that queued meanwhile, until the
// queue is empty.
func (b *batcher) send(batch []*batchCall) {
	for {
		if len(batch) > 0 {
			b.roundTrip(batch)
		}
		b.mu.Lock()
		if len(b.queue) == 0 {
			b.inFlight--
			idle := b.inFlight == 0
			b.mu.Unlock()
			if idle {
				b.c.batches.forget(b)
			}
			return
		}
		batch = b.take()
		b.mu.Unlock()
	}
}

// roundTrip sends one batch request and hands each call its result.
func (b *batcher) roundTrip(batch []*batchCall) {
	req := api.BatchRequest{Ops: make([]api.BatchOp, len(batch))}
	for i, call := range batch {
		req.Ops[i] = call.op
	}
	var reply api.BatchReply
	// Bounded by the client's timeout: the batch serves several callers,
	// each of which stops waiting at its own deadline.
	noBatches, err := b.c.exchange(context.Background(), b.subject, &req, &reply)
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
