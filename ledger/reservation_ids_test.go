package ledger_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ledgerworks/ledger/api"
	"github.com/ledgerworks/ledger/client"
	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/ledger"
)

// A reservation id names one reservation forever. Once a settled
// reservation is forgotten (the tenant settled another more than a day
// later), a reserve with its id is refused, not granted: its events would
// carry the ids of the first one's, which every projection drops as
// duplicates, so the grant would hold nothing.
func TestForgottenReservationIDIsNotReused(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	var mu sync.Mutex
	clock := time.Date(2026, 1, 15, 10, 0, 0, 0, time.UTC)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	_, js, c := startCapped(t, ctx, ledger.Config{Service: ledger.ServiceOptions{Now: now}}, 1000)
	dims := events.Dimensions{"user": "ana"}
	settle := func(id string) {
		t.Helper()
		r, err := c.Reserve(ctx, "acme", dims, events.Amounts{Tokens: 10}, client.ReserveOptions{ID: id})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Reconcile(ctx, events.Amounts{Tokens: 10}); err != nil {
			t.Fatal(err)
		}
	}
	settle("r1")
	mu.Lock()
	clock = clock.Add(25 * time.Hour)
	mu.Unlock()
	settle("r2") // r1 is forgotten now
	before, err := ledger.StreamLastSeq(ctx, js, events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Reserve(ctx, "acme", dims, events.Amounts{Tokens: 100}, client.ReserveOptions{ID: "r1"})
	var e *events.Error
	if !errors.Is(err, events.ErrConflict) || !errors.As(err, &e) || e.Details["reservation"] != "r1" {
		t.Fatalf("reserve with a forgotten id: %v, want a conflict naming r1", err)
	}
	if after, err := ledger.StreamLastSeq(ctx, js, events.StreamName); err != nil || after != before {
		t.Fatalf("the refused reserve moved the stream from %d to %d (%v)", before, after, err)
	}
	// A new id is granted and holds its budget.
	r3, err := c.Reserve(ctx, "acme", dims, events.Amounts{Tokens: 100}, client.ReserveOptions{ID: "r3"})
	if err != nil {
		t.Fatal(err)
	}
	if len(r3.Reply.Limits) != 1 || r3.Reply.Limits[0].Reserved != 0 || r3.Reply.Limits[0].Requested != 100 {
		t.Fatalf("r3's limits: %+v", r3.Reply.Limits)
	}
	chk, err := c.Check(ctx, api.CheckRequest{Tenant: "acme", Dims: dims, AfterSeq: r3.Reply.Seq})
	if err != nil {
		t.Fatal(err)
	}
	if len(chk.Limits) != 1 || chk.Limits[0].Reserved != 100 || chk.Limits[0].Used != 10 {
		t.Fatalf("after r3: %+v, want 10 used today (r2) and 100 reserved", chk.Limits)
	}
}
