package projections

import (
	"testing"
	"time"

	"github.com/ledgerworks/ledger/events"
)

// A projector counts what it folds (messages, events, duplicates, refusals,
// reservations created and settled) and keeps the open reservations and the
// estimates they hold as the fold opens and settles them: a reservation
// created twice, or settled when it is not open, changes nothing. Made
// again on the same store, it counts the open ones from the store.
func TestProjectorStats(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	user := events.Dimensions{"user": "ann"}
	hold := func(evID, tenant, id string, est events.Amounts) events.Event {
		return events.New(evID, tenant, t0, user, &events.ReservationCreated{Reservation: id, Estimate: est, ExpiresAt: t0.Add(time.Minute)})
	}
	settle := func(evID, tenant string, p events.Payload) events.Event {
		return events.New(evID, tenant, t0, nil, p)
	}
	msg := func(seq uint64, subject string, evs ...events.Event) Message {
		data, err := events.EncodeBatch(evs)
		if err != nil {
			t.Fatal(err)
		}
		return Message{Seq: seq, Subject: subject, Data: data}
	}
	acme, globex := events.Subject("acme", events.ClassDecision), events.Subject("globex", events.ClassDecision)
	commits := [][]Message{
		{
			msg(1, acme, hold("a1", "acme", "r1", events.Amounts{InputTokens: 300, OutputTokens: 200, Requests: 1}),
				hold("a2", "acme", "r2", events.Amounts{Cost: 7})),
			msg(2, globex, hold("g1", "globex", "r1", events.Amounts{Tokens: 40})),
		},
		{
			msg(3, acme,
				hold("a1", "acme", "r1", events.Amounts{Tokens: 1}),                  // the same event again: a duplicate
				hold("a3", "acme", "r1", events.Amounts{Tokens: 1}),                  // r1 is open: nothing new
				settle("a4", "acme", &events.ReservationReleased{Reservation: "r9"}), // never open
				settle("a5", "acme", &events.ReservationReconciled{Reservation: "r1", Actual: events.Amounts{Tokens: 450}}),
			),
			msg(4, "ledger.ev.nonsense", hold("x1", "acme", "r5", events.Amounts{Tokens: 1})), // refused whole
		},
		{
			msg(5, acme, settle("a6", "acme", &events.ReservationExpired{Reservation: "r2"}),
				settle("a6", "acme", &events.ReservationExpired{Reservation: "r2"})), // a duplicate within one message
			msg(6, acme, settle("a7", "acme", &events.ReservationReleased{Reservation: "r2"})), // settled already
		},
	}
	dir := t.TempDir()
	s := openStore(t, dir)
	p, err := NewProjector(nil, s, ProjectorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range commits {
		if err := p.Apply(c); err != nil {
			t.Fatal(err)
		}
	}
	want := Stats{
		Messages: 6, Events: 8, Duplicates: 2, Rejected: 1,
		Created: 3, Reconciled: 1, Expired: 1,
		Open: 1, Reserved: ReservedAmounts{Tokens: 40},
	}
	if got := p.Stats(); got != want {
		t.Errorf("stats\n got %+v\nwant %+v", got, want)
	}
	// Folded again (a redelivery), nothing is counted twice.
	if err := p.Apply(commits[0]); err != nil {
		t.Fatal(err)
	}
	if got := p.Stats(); got != want {
		t.Errorf("stats after a redelivery\n got %+v\nwant %+v", got, want)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openStore(t, dir)
	defer s.Close()
	p, err = NewProjector(nil, s, ProjectorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Stats(), (Stats{Open: 1, Reserved: ReservedAmounts{Tokens: 40}}); got != want {
		t.Errorf("stats after a restart\n got %+v\nwant %+v", got, want)
	}
	if err := p.Apply([]Message{msg(7, globex, settle("g2", "globex", &events.ReservationReleased{Reservation: "r1"}))}); err != nil {
		t.Fatal(err)
	}
	if got, want := p.Stats(), (Stats{Messages: 1, Events: 1, Released: 1}); got != want {
		t.Errorf("stats after the last release\n got %+v\nwant %+v", got, want)
	}
}
