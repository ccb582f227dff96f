package replay_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/projections"
	"github.com/ledgerworks/ledger/replay"
	rt "github.com/ledgerworks/ledger/replay/replaytest"
)

// The stream source and the memory source return the same messages for the
// same ranges, in batches no larger than asked; a partition filter keeps
// only its partitions; ErrStop ends a read cleanly.
func TestSources(t *testing.T) {
	ctx := rt.Ctx(t, 60*time.Second)
	js := appendFixture(t)
	var mem replay.MemorySource
	if _, err := rt.Source(t, js).Read(ctx, replay.Range{}, func(b []replay.Message) error {
		mem.Messages = append(mem.Messages, b...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(mem.Messages) != 21 {
		t.Fatalf("%d messages", len(mem.Messages))
	}
	mem.Batch = 4
	seqs := func(src replay.Source, r replay.Range) ([]uint64, uint64) {
		var out []uint64
		to, err := src.Read(ctx, r, func(b []replay.Message) error {
			if len(b) > 4 {
				t.Fatalf("batch of %d", len(b))
			}
			for _, m := range b {
				out = append(out, m.Seq)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out, to
	}
	small := smallSource(t, js, 4)
	for _, r := range []replay.Range{{}, {From: 3, To: 7}, {From: 20}, {From: 21, To: 21}, {From: 8, To: 5}, {From: 19, To: 40}} {
		a, ta := seqs(small, r)
		b, tb := seqs(&mem, r)
		if !reflect.DeepEqual(a, b) || ta != tb {
			t.Errorf("range %v: stream %v (to %d), memory %v (to %d)", r, a, ta, b, tb)
		}
	}

	p := events.Partition("beta")
	part, err := replay.NewStreamSource(js, replay.StreamOptions{Partitions: []int{p}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	if _, err := part.Read(ctx, replay.Range{}, func(b []replay.Message) error {
		for _, m := range b {
			tenant, _, _ := projections.ParseSubject(m.Subject)
			got = append(got, tenant)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 6 {
		t.Fatalf("partition %d: %v", p, got)
	}
	for _, tenant := range got {
		if tenant != "beta" {
			t.Fatalf("partition %d holds %v", p, got)
		}
	}

	n := 0
	if _, err := small.Read(ctx, replay.Range{}, func(b []replay.Message) error {
		n += len(b)
		return replay.ErrStop
	}); err != nil || n != 4 {
		t.Fatalf("stopped read: %d messages, %v", n, err)
	}
	boom := errors.New("boom")
	if _, err := small.Read(ctx, replay.Range{}, func([]replay.Message) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("failed callback: %v", err)
	}
	if _, err := replay.NewStreamSource(js, replay.StreamOptions{Partitions: []int{16}}); err == nil {
		t.Fatal("partition 16 accepted")
	}
}
