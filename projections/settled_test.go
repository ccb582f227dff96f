package projections

import (
	"bytes"
	"testing"
	"time"

	"github.com/ledgerworks/ledger/events"
)

// Settled reservations live under their own keys and are forgotten once the
// tenant settles another more than ClosedRetention later, whether the two
// settlements reach the store in one commit or in two, and a reused
// reservation id keeps its newer settlement.
func TestSettledReservationsForgottenAfterRetention(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	user := events.Dimensions{"user": "ann"}
	n := 0
	ev := func(when time.Time, p events.Payload) events.Event {
		n++
		return events.New("e"+string(rune('a'+n)), "acme", when, user, p)
	}
	hold := func(id string, when time.Time) events.Event {
		return ev(when, &events.ReservationCreated{Reservation: id, Estimate: events.Amounts{Tokens: 5}, ExpiresAt: when.Add(time.Minute)})
	}
	stream := []events.Event{
		hold("r1", t0), ev(t0, &events.ReservationReleased{Reservation: "r1"}),
		hold("r2", t0.Add(time.Minute)), ev(t0.Add(time.Minute), &events.ReservationExpired{Reservation: "r2"}),
		// r2 is reused and settled again, 23 hours later.
		hold("r2", t0.Add(23*time.Hour)), ev(t0.Add(23*time.Hour), &events.ReservationReconciled{Reservation: "r2", Actual: events.Amounts{Tokens: 4}}),
		// 25 hours after r1: r1 and r2's first settlement are past retention.
		hold("r3", t0.Add(25*time.Hour)), ev(t0.Add(25*time.Hour), &events.ReservationReleased{Reservation: "r3"}),
	}
	for _, perCommit := range []int{1, 2, len(stream)} {
		s := newStore(t)
		p, err := NewProjector(nil, s, ProjectorOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var msgs []Message
		for i := range stream {
			data, err := events.EncodeBatch(stream[i : i+1])
			if err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, Message{Seq: uint64(i + 1), Subject: events.Subject("acme", events.ClassDecision), Data: data})
		}
		for i := 0; i < len(msgs); i += perCommit {
			if err := p.Apply(msgs[i:min(i+perCommit, len(msgs))]); err != nil {
				t.Fatal(err)
			}
		}
		if _, ok, err := s.Settled("acme", "r1"); err != nil || ok {
			t.Errorf("%d per commit: r1 still remembered (%v)", perCommit, err)
		}
		c, ok, err := s.Settled("acme", "r2")
		if err != nil || !ok || c.Outcome != OutcomeReconciled || !c.At.Equal(t0.Add(23*time.Hour)) {
			t.Errorf("%d per commit: r2 = %+v, %v, %v; want its second settlement", perCommit, c, ok, err)
		}
		if c, ok, err := s.Settled("acme", "r3"); err != nil || !ok || c.Outcome != OutcomeReleased {
			t.Errorf("%d per commit: r3 = %+v, %v, %v", perCommit, c, ok, err)
		}
		var index []string
		err = s.Scan(func(e *Entry) error {
			if e.Kind == EntrySettledAt {
				index = append(index, e.ID+"@"+time.Unix(0, e.Int).UTC().Format("02T15"))
			}
			if e.Kind == EntryTenant && bytes.Contains(e.Value, []byte("closed")) {
				t.Errorf("settled reservations are in the tenant's state")
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := index, []string{"r2@02T11", "r3@02T13"}; len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
			t.Errorf("%d per commit: settled index %v, want %v", perCommit, got, want)
		}
	}
}

// After a restart the filter over settled ids is rebuilt from the store, so
// a settled reservation is still found once it is ready, and an unknown id
// is answered without a Pebble read.
func TestSettledFilterRebuiltOnOpen(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	d := NewDeltas()
	tn := NewTenant("acme")
	tn.close(&Reservation{ID: "r1", Time: at}, OutcomeReleased, at, d)
	if err := s.Write(&Commit{Deltas: d, Tenants: []*Tenant{tn}, Applied: 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	defer s.Close()
	waitBuilt(t, s.settled)
	if !s.settled.mayContain("acme", "r1") {
		t.Fatal("the rebuilt filter misses a settled reservation")
	}
	if c, ok, err := s.Settled("acme", "r1"); err != nil || !ok || c.Outcome != OutcomeReleased {
		t.Fatalf("r1 after reopening: %+v, %v, %v", c, ok, err)
	}
	if _, ok, err := s.Settled("acme", "r2"); err != nil || ok {
		t.Fatalf("r2 was never settled: %v, %v", ok, err)
	}
}
