package projections

import (
	"testing"
	"time"

	"github.com/ledgerworks/ledger/events"
)

// The projector prepares a batch (decoding and deduplicating it) while the
// one before is still being committed, so the store does not hold that
// batch's event IDs yet: an event repeated across the two (a producer's
// retry, grouped differently) must still count once, and so must one
// repeated in a third batch prepared while both wait. The batches are
// prepared in the order follow prepares them and committed afterwards.
func TestPreparedBatchesDeduplicateEachOther(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	use := func(id string, tokens int64) events.Event {
		return events.New(id, "acme", t0, events.Dimensions{"user": "ann"}, &events.UsageRecorded{Amounts: events.Amounts{Tokens: tokens}})
	}
	msg := func(seq uint64, evs ...events.Event) Message {
		data, err := events.EncodeBatch(evs)
		if err != nil {
			t.Fatal(err)
		}
		return Message{Seq: seq, Subject: events.Subject("acme", events.ClassUsage), Data: data}
	}
	s := openStore(t, t.TempDir())
	p, err := NewProjector(nil, s, ProjectorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	inputs := [][]Message{
		{msg(1, use("e1", 1), use("e2", 10))},
		{msg(2, use("e2", 10), use("e3", 100))},                 // e2 again, before batch 1 commits
		{msg(3, use("e1", 1), use("e3", 100), use("e4", 1000))}, // e1 and e3 again, both still waiting
		{msg(3, use("e5", 10000))},                              // a redelivered sequence: nothing new
	}
	var bs []*batch
	prepared := p.Applied()
	for _, in := range inputs {
		b, err := p.prepare(in, prepared, bs)
		if err != nil {
			t.Fatal(err)
		}
		if b == nil {
			continue
		}
		bs = append(bs, b)
		prepared = b.last
	}
	if len(bs) != 3 {
		t.Fatalf("%d batches prepared, want 3 (the redelivery prepares none)", len(bs))
	}
	for _, b := range bs {
		if err := p.commit(b); err != nil {
			t.Fatal(err)
		}
	}
	tot, applied, err := p.Totals("acme")
	if err != nil {
		t.Fatal(err)
	}
	if tot[events.MetricTokens] != 1111 || applied != 3 {
		t.Errorf("tokens %d at sequence %d, want 1111 (e1..e4 once each) at 3", tot[events.MetricTokens], applied)
	}
	if got := p.Stats().Duplicates; got != 3 {
		t.Errorf("%d duplicates counted, want 3", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
