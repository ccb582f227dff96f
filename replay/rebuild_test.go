package replay_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ledgerworks/ledger/projections"
	"github.com/ledgerworks/ledger/replay"
	rt "github.com/ledgerworks/ledger/replay/replaytest"
)

// About 100,000 events of every type are appended while a live projector
// folds them in small batches; a rebuild folds the whole stream in large
// batches at the same time. Both end with the same digest at the same
// sequence.
func TestRebuildMatchesLive(t *testing.T) {
	ctx := rt.Ctx(t, 240*time.Second)
	_, js := rt.Stream(t)
	const seed = 20260115
	t.Logf("seed %d", seed)
	bs := rt.Generate(rt.GenOptions{Seed: seed, Events: 100_000, Tenants: 24, Start: time.Date(2026, 3, 28, 20, 0, 0, 0, time.UTC), TZ: "Europe/Berlin"}) // across the DST change
	n := rt.CountEvents(bs)
	t.Logf("%d events in %d messages", n, len(bs))
	lv := rt.StartLive(t, js, "")
	t0 := time.Now()
	last := rt.AppendConcurrently(t, js, bs, 4)
	t.Logf("appended in %s", time.Since(t0).Round(time.Millisecond))
	src := rt.Source(t, js)

	// Raw read of the whole stream, for the rate comparison.
	start := time.Now()
	var msgs int
	if _, err := src.Read(ctx, replay.Range{}, func(b []replay.Message) error { msgs += len(b); return nil }); err != nil {
		t.Fatal(err)
	}
	read := time.Since(start)
	if uint64(msgs) != last {
		t.Fatalf("read %d messages, stream has %d", msgs, last)
	}

	res, err := replay.Rebuild(ctx, src, replay.RebuildOptions{Dir: filepath.Join(t.TempDir(), "rebuilt")})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("raw read: %d msgs in %s (%.0f events/s); rebuild: %s (%.0f events/s)",
		msgs, read.Round(time.Millisecond), float64(n)/read.Seconds(), res.Elapsed.Round(time.Millisecond), float64(n)/res.Elapsed.Seconds())
	lv.Wait(t, last)
	t.Logf("live caught up %s after the first append", time.Since(t0).Round(time.Millisecond))
	if lv.P.Rejected() == 0 {
		t.Fatal("the history should hold events the projector refuses")
	}
	want := rt.Digest(t, lv.Store)
	for _, k := range []string{"applied", "tenant", "counter", "total", "seen"} {
		if want.Entries[k] == 0 {
			t.Fatalf("live projection has no %s entries: %v", k, want.Entries)
		}
	}
	if res.Digest.Sum != want.Sum || res.Applied != last || want.Applied != last {
		t.Fatalf("rebuilt digest %s at %d, live %s at %d (stream %d)\nrebuilt kinds %v\nlive kinds %v",
			res.Digest.Sum, res.Applied, want.Sum, want.Applied, last, res.Digest.Kinds, want.Kinds)
	}
}

// A rebuild interrupted and resumed in the same directory, and one started
// from a checkpoint taken half way, end with the digest of a rebuild in one
// pass and of the live projection.
func TestRebuildResumeAndCheckpoint(t *testing.T) {
	ctx := rt.Ctx(t, 120*time.Second)
	_, js := rt.Stream(t)
	bs := rt.Generate(rt.GenOptions{Seed: 7, Events: 8_000, Tenants: 6, Start: time.Date(2026, 3, 28, 22, 0, 0, 0, time.UTC), TZ: "Europe/Berlin"})
	lv := rt.StartLive(t, js, "")
	seqs := rt.AppendAll(t, js, bs)
	last := seqs[len(seqs)-1]
	lv.Wait(t, last)
	want := rt.Digest(t, lv.Store)
	src := rt.Source(t, js)

	one, err := replay.Rebuild(ctx, src, replay.RebuildOptions{Dir: filepath.Join(t.TempDir(), "one")})
	if err != nil {
		t.Fatal(err)
	}
	if one.Digest.Sum != want.Sum {
		t.Fatalf("one pass: digest %s, live %s", one.Digest.Sum, want.Sum)
	}

	// Interrupted after a few batches, then resumed in the same directory.
	dir := filepath.Join(t.TempDir(), "resumed")
	ictx, cancel := context.WithCancel(ctx)
	calls := 0
	small := smallSource(t, js, 37)
	_, err = replay.Rebuild(ictx, small, replay.RebuildOptions{Dir: dir, Fold: replay.FoldOptions{OnMessages: func([]replay.Message) {
		if calls++; calls == 5 {
			cancel()
		}
	}}})
	cancel()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted rebuild: %v", err)
	}
	res, err := replay.Rebuild(ctx, small, replay.RebuildOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Resumed || res.From <= 1 || res.Digest.Sum != want.Sum {
		t.Fatalf("resumed rebuild from %d (resumed %v): digest %s, want %s", res.From, res.Resumed, res.Digest.Sum, want.Sum)
	}

	// Stopped at a sequence, then resumed to the end.
	dir = filepath.Join(t.TempDir(), "stopped")
	mid := seqs[len(seqs)/3]
	if _, err := replay.Rebuild(ctx, src, replay.RebuildOptions{Dir: dir, Fold: replay.FoldOptions{Through: mid}}); err != nil {
		t.Fatal(err)
	}
	half, err := projections.OpenStore(dir, projections.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ckpt := filepath.Join(t.TempDir(), "ckpt")
	info, err := replay.Checkpoint(half, ckpt, projections.StoreOptions{})
	half.Close()
	if err != nil {
		t.Fatal(err)
	}
	if info.Applied != mid {
		t.Fatalf("checkpoint at %d, want %d", info.Applied, mid)
	}
	if res, err := replay.Rebuild(ctx, src, replay.RebuildOptions{Dir: dir}); err != nil || res.From != mid+1 || res.Digest.Sum != want.Sum {
		t.Fatalf("stopped at %d and resumed: from %d, %v, digest %v, want %s", mid, res.From, err, res.Digest, want.Sum)
	}

	// From the checkpoint.
	res, err = replay.Rebuild(ctx, src, replay.RebuildOptions{Dir: filepath.Join(t.TempDir(), "from-ckpt"), Checkpoint: ckpt})
	if err != nil {
		t.Fatal(err)
	}
	if res.Checkpoint != mid || res.From != mid+1 || res.Digest.Sum != want.Sum {
		t.Fatalf("from checkpoint %d: folded from %d, digest %s, want %s", res.Checkpoint, res.From, res.Digest.Sum, want.Sum)
	}

	// A checkpoint changed behind its back is refused.
	tampered := filepath.Join(t.TempDir(), "tampered")
	if err := replay.CopyCheckpointForTest(ckpt, tampered); err != nil {
		t.Fatal(err)
	}
	ts, err := projections.OpenStore(tampered, projections.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.DB().Set([]byte("tx"), []byte("y"), nil); err != nil {
		t.Fatal(err)
	}
	ts.Close()
	_, err = replay.Rebuild(ctx, src, replay.RebuildOptions{Dir: filepath.Join(t.TempDir(), "from-tampered"), Checkpoint: tampered})
	if !errors.Is(err, replay.ErrCheckpointMismatch) {
		t.Fatalf("rebuild from a tampered checkpoint: %v", err)
	}
}

func smallSource(t *testing.T, js jetstream.JetStream, n int) *replay.StreamSource {
	t.Helper()
	src, err := replay.NewStreamSource(js, replay.StreamOptions{Batch: n})
	if err != nil {
		t.Fatal(err)
	}
	return src
}
