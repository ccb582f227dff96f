package replay_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ledgerworks/ledger/api"
	"github.com/ledgerworks/ledger/client"
	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/internal/ledgertest"
	"github.com/ledgerworks/ledger/ledger"
	"github.com/ledgerworks/ledger/projections"
	"github.com/ledgerworks/ledger/replay"
	rt "github.com/ledgerworks/ledger/replay/replaytest"
)

// What the live check answered when the stream stood at sequence S is what
// At answers for S afterwards, for every tenant and call, and so are the
// totals. The live answers are recorded during the test, right after the
// ledger's projector applied S, with the service's clock fixed: the check
// endpoint's reply itself, and projections.Statuses on the projector's View.
// At a time T, At stands at the last message the stream stored by T.
func TestAtMatchesLiveAnswers(t *testing.T) {
	ctx := rt.Ctx(t, 90*time.Second)
	var clock atomic.Pointer[time.Time]
	// The expiry sweep is held off (its first tick is an hour away), so the
	// stream holds only what the test appends.
	l := ledgertest.StartLedger(t, ledger.Config{ExpirySweep: time.Hour, Service: ledger.ServiceOptions{Now: func() time.Time { return *clock.Load() }}})
	nc := ledgertest.Connect(t, l.ClientURL())
	js := ledgertest.JetStream(t, nc)
	c, err := client.New(nc, client.WithJSON())
	if err != nil {
		t.Fatal(err)
	}
	bs := rt.Generate(rt.GenOptions{Seed: 42, Events: 3_000, Tenants: 3, Start: time.Date(2026, 3, 28, 23, 50, 0, 0, time.UTC), TZ: "Europe/Berlin"})
	calls := []replay.Check{
		{Dims: events.Dimensions{"user": "ana", "model": "gpt-4o"}, Groups: []string{"staff"}, Request: events.Amounts{InputTokens: 1500, OutputTokens: 500, Requests: 1}},
		{Dims: events.Dimensions{"user": "ben", "model": "gpt-4o", "operation": "embedding"}, Groups: []string{"staff"}, Request: events.Amounts{Tokens: 40_000, Requests: 1}},
		{Dims: events.Dimensions{"user": "cai", "model": "llama"}},
		{Dims: events.Dimensions{"user": "dee", "model": "claude", "location": "eu", "metric": "tokens"}, Request: events.Amounts{Tokens: 10}},
		{Dims: events.Dimensions{"user": "eli", "model": "llama", "project": "p2"}},
	}
	type point struct {
		seq     uint64
		now     time.Time
		answers map[string]string // tenant -> JSON of totals and replies
	}
	var points []point
	const chunks = 6
	for ch := range chunks {
		part := bs[ch*len(bs)/chunks : (ch+1)*len(bs)/chunks]
		last := part[len(part)-1].Events[0].Time
		// An upstream 429 for one tenant's claude calls, standing at this point.
		tenant := fmt.Sprintf("t%02d", ch%3)
		part = append(part, rt.Batch{Tenant: tenant, Class: events.ClassDecision, Events: []events.Event{events.New(fmt.Sprintf("429-%d", ch), tenant, last,
			events.Dimensions{"model": "claude", "location": "eu"}, &events.RetrySignalled{RetryUntil: last.Add(5 * time.Minute), RetryDelay: "300s"})}})
		seqs := rt.AppendAll(t, js, part)
		s := seqs[len(seqs)-1]
		if err := l.Projector().WaitApplied(ctx, s); err != nil {
			t.Fatal(err)
		}
		now := last.Add(time.Second) // the clock at this point
		clock.Store(&now)
		pt := point{seq: s, now: now, answers: map[string]string{}}
		for _, tenant := range []string{"t00", "t01", "t02"} {
			var snap replay.Snapshot
			for _, call := range calls {
				reply, err := c.Check(ctx, api.CheckRequest{Tenant: tenant, Dims: call.Dims, Groups: call.Groups, Request: call.Request, AfterSeq: s})
				if err != nil {
					t.Fatal(err)
				}
				if reply.AppliedSeq != s {
					t.Fatalf("live check at %d, want %d", reply.AppliedSeq, s)
				}
				// The same limits straight from the projector's state.
				err = l.Projector().View(tenant, func(tn *projections.Tenant, cs projections.Counters, applied uint64) error {
					sts := projections.Statuses(tn, cs, projections.Call{Dims: call.Dims, Groups: call.Groups, Request: call.Request, Permit: true}, now)
					if reply.Reason != "unknown_project" && (applied != s || mustJSON(t, ledger.CheckReplyOf(sts, now).Limits) != mustJSON(t, reply.Limits)) {
						t.Fatalf("the projector's statuses at %d disagree with the check's reply", applied)
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				snap.Checks = append(snap.Checks, replay.AtCheck{Check: call, Reply: *reply})
			}
			u, err := c.Usage(ctx, tenant, s)
			if err != nil {
				t.Fatal(err)
			}
			snap.Totals = u.Totals
			pt.answers[tenant] = answerJSON(t, &snap)
		}
		points = append(points, pt)
	}

	src := rt.Source(t, js)
	reasons := map[string]int{}
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
				reasons[c.Reply.Reason]++
			}
		}
	}
	t.Logf("answers compared: %v", reasons)
	for _, r := range []string{"", "exceeds_limit", "retry_later", "unknown_project"} {
		if reasons[r] == 0 {
			t.Errorf("no answer %q among the points: %v", r, reasons)
		}
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
	// From a checkpoint taken at an earlier point, by sequence and by time,
	// including the checkpoint's own point (nothing left to fold).
	dir := filepath.Join(t.TempDir(), "p")
	if _, err := replay.Rebuild(ctx, src, replay.RebuildOptions{Dir: dir, Fold: replay.FoldOptions{Through: points[1].seq}}); err != nil {
		t.Fatal(err)
	}
	store, err := projections.OpenStore(dir, projections.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ckpt := filepath.Join(t.TempDir(), "ckpt")
	_, err = replay.Checkpoint(store, ckpt, projections.StoreOptions{})
	store.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, pt := range []point{points[1], points[3]} {
		snap, err := replay.At(ctx, src, "t02", calls, replay.AtOptions{Seq: pt.seq, Now: pt.now, Checkpoint: ckpt, TempDir: t.TempDir()})
		if err != nil || snap.Seq != pt.seq || answerJSON(t, snap) != pt.answers["t02"] || !snap.SeqTime.Equal(mem.Messages[pt.seq-1].Time) {
			t.Fatalf("from the checkpoint at %d: %v %+v", pt.seq, err, snap)
		}
	}
	if snap, err := replay.At(ctx, src, "t02", calls, replay.AtOptions{Time: mem.Messages[points[3].seq-1].Time, Now: points[3].now, Checkpoint: ckpt, TempDir: t.TempDir()}); err != nil || answerJSON(t, snap) != points[3].answers["t02"] {
		t.Fatalf("from the checkpoint by time: %v", err)
	}
	if _, err := replay.At(ctx, src, "t02", calls, replay.AtOptions{Seq: points[0].seq, Checkpoint: ckpt, TempDir: t.TempDir()}); err == nil {
		t.Fatal("a checkpoint past the point was used")
	}
	if _, err := replay.At(ctx, src, "t02", calls, replay.AtOptions{Time: mem.Messages[points[0].seq-1].Time, Checkpoint: ckpt, TempDir: t.TempDir()}); err == nil {
		t.Fatal("a checkpoint past the time was used")
	}

	// Without a clock of its own, At evaluates at that time.
	if snap, err = replay.At(ctx, &mem, "t01", calls, replay.AtOptions{Time: at, TempDir: t.TempDir()}); err != nil || !snap.Now.Equal(at) {
		t.Fatalf("default clock %v, want %v (%v)", snap.Now, at, err)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// answerJSON is what is compared: totals and every check's reply.
func answerJSON(t *testing.T, s *replay.Snapshot) string {
	t.Helper()
	tot := map[events.Metric]int64{}
	for m, n := range s.Totals {
		if n != 0 {
			tot[m] = n
		}
	}
	return mustJSON(t, struct {
		Totals map[events.Metric]int64
		Checks []replay.AtCheck
	}{tot, s.Checks})
}
