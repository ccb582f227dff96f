package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ledgerworks/ledger/api"
	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/internal/ledgertest"
)

// heldBatches answers batch requests on a connection of its own, but only
// when told to: it records every batch and holds its reply until release is
// closed. Each reserve is answered with its own reservation id.
type heldBatches struct {
	mu      sync.Mutex
	batches [][]api.BatchOp
	arrived chan struct{} // one send per batch
	release chan struct{}
}

func holdBatches(t *testing.T, url string) *heldBatches {
	t.Helper()
	h := &heldBatches{arrived: make(chan struct{}, 64), release: make(chan struct{})}
	nc := ledgertest.Connect(t, url)
	_, err := nc.Subscribe(acmeOwner(api.SubjectBatch), func(m *nats.Msg) {
		var req api.BatchRequest
		if err := api.Decode(m.Data, &req); err != nil {
			t.Error(err)
			return
		}
		h.mu.Lock()
		h.batches = append(h.batches, req.Ops)
		h.mu.Unlock()
		h.arrived <- struct{}{}
		go func() {
			<-h.release
			rep := api.BatchReply{Results: make([]api.BatchResult, len(req.Ops))}
			for i, op := range req.Ops {
				rep.Results[i].Reserve = &api.ReserveReply{Reservation: op.Reserve.Reservation, Outcome: "created"}
			}
			b, _ := api.Encode(api.Msgpack, rep)
			m.Respond(b)
		}()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return h
}

// acmeOwner is the subject the owner of tenant acme's partition answers
// op on: where the server maps the client's ledger.v1.<op>.acme.
func acmeOwner(op string) string { return api.PartitionSubject(op, events.Partition("acme")) }

func waitFor(t *testing.T, ch <-chan struct{}, n int) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for range n {
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out waiting for %d batches", n)
		}
	}
}

// While maxBatchesInFlight batches wait for replies, further calls queue
// and leave together, as one batch, when a reply comes back; a queued call
// whose caller stopped waiting is left out. Every caller gets its own
// result.
func TestBatcherGathersCallsWhileBusy(t *testing.T) {
	srv := ledgertest.StartServer(t, "")
	h := holdBatches(t, srv.URL())
	c, err := New(ledgertest.Connect(t, srv.URL()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	type result struct {
		id  string
		got string
		err error
	}
	results := make(chan result, 64)
	reserve := func(ctx context.Context, id string) {
		r, err := c.Reserve(ctx, "acme", nil, events.Amounts{Tokens: 1}, ReserveOptions{ID: id})
		res := result{id: id, err: err}
		if err == nil {
			res.got = r.ID
		}
		results <- res
	}
	// The first calls leave at once, one batch each, and are held.
	for i := range maxBatchesInFlight {
		go reserve(ctx, "first-"+string(rune('a'+i)))
	}
	waitFor(t, h.arrived, maxBatchesInFlight)
	// The next ones queue; one of them gives up while queued.
	const queued = 10
	gaveUp, giveUp := context.WithCancel(ctx)
	for i := range queued {
		cctx := ctx
		if i == 3 {
			cctx = gaveUp
		}
		go reserve(cctx, "queued-"+string(rune('a'+i)))
	}
	ledgertest.Eventually(t, 10*time.Second, "the calls to queue", func() bool {
		c.batch.mu.Lock()
		defer c.batch.mu.Unlock()
		q := c.batch.queues["acme"]
		return q != nil && len(q.calls) == queued
	})
	giveUp()
	first := <-results
	if !errors.Is(first.err, context.Canceled) || first.id != "queued-d" {
		t.Fatalf("first result %+v, want queued-d given up (canceled)", first)
	}
	close(h.release)
	for range maxBatchesInFlight + queued - 1 {
		r := <-results
		if r.err != nil || r.got != r.id {
			t.Fatalf("call %s: got %q, %v", r.id, r.got, r.err)
		}
	}
	waitFor(t, h.arrived, 1)
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.batches) != maxBatchesInFlight+1 {
		t.Fatalf("%d batches, want %d: the queued calls in one", len(h.batches), maxBatchesInFlight+1)
	}
	last := h.batches[len(h.batches)-1]
	if len(last) != queued-1 {
		t.Fatalf("the queued calls left in a batch of %d, want %d (the one given up left out)", len(last), queued-1)
	}
	for _, op := range last {
		if op.Reserve.Reservation == "queued-d" {
			t.Fatal("the call given up was sent")
		}
	}
}

// A reply that does not answer every operation fails each call with a
// typed internal error rather than handing out another call's result.
func TestBatcherRefusesAShortReply(t *testing.T) {
	srv := ledgertest.StartServer(t, "")
	nc := ledgertest.Connect(t, srv.URL())
	if _, err := nc.Subscribe(acmeOwner(api.SubjectBatch), func(m *nats.Msg) {
		b, _ := api.Encode(api.Msgpack, api.BatchReply{Results: []api.BatchResult{}})
		m.Respond(b)
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	c, err := New(ledgertest.Connect(t, srv.URL()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Reserve(ctx, "acme", nil, events.Amounts{Tokens: 1}, ReserveOptions{}); !errors.Is(err, events.ErrInternal) {
		t.Fatalf("reserve: %v, want internal", err)
	}
}

// A ledger without the batch endpoint (a client upgraded before its
// servers) gets each call on its own subject instead; with no ledger at
// all, the calls are unavailable.
func TestBatcherFallsBackToSingleRequests(t *testing.T) {
	srv := ledgertest.StartServer(t, "")
	c, err := New(ledgertest.Connect(t, srv.URL()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Reserve(ctx, "acme", nil, events.Amounts{Tokens: 1}, ReserveOptions{}); !errors.Is(err, events.ErrUnavailable) {
		t.Fatalf("reserve with no ledger: %v, want unavailable", err)
	}

	old := ledgertest.Connect(t, srv.URL())
	answer := func(subject string, reply func(m *nats.Msg) any) {
		if _, err := old.Subscribe(subject, func(m *nats.Msg) {
			b, _ := api.Encode(api.Msgpack, reply(m))
			m.Respond(b)
		}); err != nil {
			t.Fatal(err)
		}
	}
	answer(acmeOwner(api.SubjectReserve), func(m *nats.Msg) any {
		var req api.ReserveRequest
		if err := api.Decode(m.Data, &req); err != nil {
			t.Error(err)
		}
		return api.ReserveReply{Reservation: req.Reservation, Outcome: "created", Seq: 7}
	})
	answer(acmeOwner(api.SubjectReconcile), func(*nats.Msg) any { return api.DecisionReply{Outcome: "reconciled", Seq: 8} })
	if err := old.Flush(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := "r" + string(rune('a'+i))
			r, err := c.Reserve(ctx, "acme", nil, events.Amounts{Tokens: 1}, ReserveOptions{ID: id})
			if err != nil || r.Reply.Reservation != id || r.Reply.Seq != 7 {
				t.Errorf("reserve %s: %+v, %v", id, r, err)
				return
			}
			if d, err := r.Reconcile(ctx, events.Amounts{Tokens: 1}); err != nil || d.Outcome != "reconciled" {
				t.Errorf("reconcile %s: %+v, %v", id, d, err)
			}
		}()
	}
	wg.Wait()
}

// A call whose context has ended says why, as every other call of the
// client does: a deadline is unavailable, a cancellation the caller's.
func TestBatcherContextErrors(t *testing.T) {
	srv := ledgertest.StartServer(t, "")
	c, err := New(ledgertest.Connect(t, srv.URL()))
	if err != nil {
		t.Fatal(err)
	}
	late, cancelLate := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancelLate()
	if _, err := c.Reserve(late, "acme", nil, events.Amounts{Tokens: 1}, ReserveOptions{}); !errors.Is(err, events.ErrUnavailable) {
		t.Errorf("past deadline: %v, want unavailable", err)
	}
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := (&Reservation{c: c, Tenant: "acme", ID: "r1"}).Release(gone, "never ran"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v, want context.Canceled", err)
	}
}

// Calls for several tenants share the client's batches in flight, but a
// batch only ever carries one tenant's calls, to that tenant's subject:
// it is answered by the owner of that tenant's partition.
func TestBatchesCarryOneTenant(t *testing.T) {
	srv := ledgertest.StartServer(t, "")
	nc := ledgertest.Connect(t, srv.URL())
	tenants := []string{"acme", "globex", "initech"}
	var mixed atomic.Int64
	for _, tenant := range tenants {
		if _, err := nc.Subscribe(api.PartitionSubject(api.SubjectBatch, events.Partition(tenant)), func(m *nats.Msg) {
			var req api.BatchRequest
			if err := api.Decode(m.Data, &req); err != nil {
				t.Error(err)
				return
			}
			rep := api.BatchReply{Results: make([]api.BatchResult, len(req.Ops))}
			for i, op := range req.Ops {
				if op.Reserve.Tenant != api.TenantOfSubject(m.Subject) {
					mixed.Add(1)
				}
				rep.Results[i].Reserve = &api.ReserveReply{Reservation: op.Reserve.Reservation, Outcome: "created"}
			}
			b, _ := api.Encode(api.Msgpack, rep)
			m.Respond(b)
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	c, err := New(ledgertest.Connect(t, srv.URL()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i := range 300 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("r%d", i)
			r, err := c.Reserve(ctx, tenants[i%len(tenants)], nil, events.Amounts{Tokens: 1}, ReserveOptions{ID: id})
			if err != nil || r.Reply.Reservation != id {
				t.Errorf("reserve %s: %+v, %v", id, r, err)
			}
		}()
	}
	wg.Wait()
	if n := mixed.Load(); n > 0 {
		t.Fatalf("%d operations were sent in another tenant's batch", n)
	}
	c.batch.mu.Lock()
	defer c.batch.mu.Unlock()
	if c.batch.inFlight != 0 || len(c.batch.queues) != 0 || len(c.batch.ready) != 0 {
		t.Fatalf("idle client holds %d batches in flight, %d queues", c.batch.inFlight, len(c.batch.queues))
	}
}
