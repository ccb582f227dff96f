package replay_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/projections"
	"github.com/ledgerworks/ledger/replay"
	rt "github.com/ledgerworks/ledger/replay/replaytest"
)

// What a live check answered when the stream stood at sequence S (recorded
// during the test, right after the live projector applied S, with a fixed
// clock) is what At answers for S afterwards, for every tenant and call; and
// the totals agree. At a time T, At stands at the last message stored by T.
func TestAtMatchesLiveAnswers(t *testing.T) {
	ctx := rt.Ctx(t, 90*time.Second)
	_, js := rt.Stream(t)
	bs := rt.Generate(rt.GenOptions{Seed: 42, Events: 3_000, Tenants: 3, Start: time.Date(2026, 3, 28, 23, 50, 0, 0, time.UTC), TZ: "Europe/Berlin"})
	lv := rt.StartLive(t, js, "")
	calls := []replay.Check{
		{Dims: events.Dimensions{"user": "ana", "model": "gpt-4o"}, Groups: []string{"staff"}, Request: events.Amounts{InputTokens: 1500, OutputTokens: 500, Requests: 1}},
		{Dims: events.Dimensions{"user": "ben", "model": "gpt-4o", "operation": "embedding"}, Groups: []string{"staff"}, Request: events.Amounts{Tokens: 40_000, Requests: 1}},
		{Dims: events.Dimensions{"user": "cai", "model": "llama"}},
	}
	type point struct {
		seq     uint64
		now     time.Time
		answers map[string]string // tenant -> JSON of totals and decisions
	}
	var points []point
	const chunks = 5
	for c := range chunks {
		part := bs[c*len(bs)/chunks : (c+1)*len(bs)/chunks]
		seqs := rt.AppendAll(t, js, part)
		s := seqs[len(seqs)-1]
		lv.Wait(t, s)
		now := part[len(part)-1].Events[0].Time.Add(time.Second) // a fixed clock for this point
		pt := point{seq: s, now: now, answers: map[string]string{}}
		for _, tenant := range []string{"t00", "t01", "t02"} {
			var snap replay.Snapshot
			err := lv.P.View(tenant, func(tn *projections.Tenant, cs projections.Counters, applied uint64) error {
				if applied != s {
					t.Fatalf("live projection at %d, want %d", applied, s)
				}
				for _, ch := range calls {
					sts := projections.Statuses(tn, cs, projections.Call{Dims: ch.Dims, Groups: ch.Groups, Request: ch.Request}, now)
					snap.Checks = append(snap.Checks, replay.AtCheck{Check: ch, Decision: replay.Decide(sts)})
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if snap.Totals, _, err = lv.P.Totals(tenant); err != nil {
				t.Fatal(err)
			}
			pt.answers[tenant] = answerJSON(t, &snap)
		}
		points = append(points, pt)
	}

	src := rt.Source(t, js)
	denied, allowed := 0, 0
	for _, pt := range points {
		for tenant, want := range pt.answers {
			snap, err := replay.At(ctx, src, tenant, calls, replay.AtOptions{Seq: pt.seq, Now: pt.now, TempDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			if snap.Seq != pt.seq {
				t.Fatalf("At(%d) stood at %d", pt.seq, snap.Seq)
			}
			if got := answerJSON(t, snap); got != want {
				t.Fatalf("tenant %s at %d:\n got %s\nwant %s", tenant, pt.seq, got, want)
			}
			for _, c := range snap.Checks {
				if c.Allowed {
					allowed++
				} else {
					denied++
				}
			}
		}
	}
	if denied == 0 || allowed == 0 {
		t.Fatalf("the points should include both answers: %d allowed, %d denied", allowed, denied)
	}

	// By time: the stream timestamp of a point's last message.
	var mem replay.MemorySource
	if _, err := src.Read(ctx, replay.Range{}, func(b []replay.Message) error { mem.Messages = append(mem.Messages, b...); return nil }); err != nil {
		t.Fatal(err)
	}
	pt := points[2]
	at := mem.Messages[pt.seq-1].Time
	if !mem.Messages[pt.seq].Time.After(at) {
		t.Fatalf("messages %d and %d were stored at the same instant", pt.seq, pt.seq+1)
	}
	snap, err := replay.At(ctx, &mem, "t01", calls, replay.AtOptions{Time: at, Now: pt.now, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if snap.Seq != pt.seq || answerJSON(t, snap) != pt.answers["t01"] {
		t.Fatalf("at %s: stood at %d (want %d)\n got %s\nwant %s", at, snap.Seq, pt.seq, answerJSON(t, snap), pt.answers["t01"])
	}
	// Without a clock of its own, At evaluates at that time.
	if snap, err = replay.At(ctx, &mem, "t01", calls, replay.AtOptions{Time: at, TempDir: t.TempDir()}); err != nil || !snap.Now.Equal(at) {
		t.Fatalf("default clock %v, want %v (%v)", snap.Now, at, err)
	}
}

// answerJSON is what is compared: totals and every check's decision.
func answerJSON(t *testing.T, s *replay.Snapshot) string {
	t.Helper()
	b, err := json.Marshal(struct {
		Totals map[events.Metric]int64
		Checks []replay.AtCheck
	}{s.Totals, s.Checks})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
