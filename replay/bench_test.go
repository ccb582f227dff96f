package replay_test

import (
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ledgerworks/ledger/replay"
	rt "github.com/ledgerworks/ledger/replay/replaytest"
)

// BenchmarkReplay measures, on one stream of ~100,000 generated events and
// in the same run, a raw read of the stream against a rebuild, a billing
// report and a chained hash of it (go test -run - -bench Replay ./replay).
// With tz=Europe/Berlin the daily limit is in a named zone.
func BenchmarkReplay(b *testing.B) {
	for _, tz := range []string{"", "Europe/Berlin"} {
		b.Run("tz="+tz, func(b *testing.B) {
			_, js := rt.Stream(b)
			bs := rt.Generate(rt.GenOptions{Seed: 1, Events: 100_000, Tenants: 24, Start: time.Date(2026, 1, 15, 20, 0, 0, 0, time.UTC), TZ: tz})
			n := float64(rt.CountEvents(bs))
			rt.AppendConcurrently(b, js, bs, 4)
			src := rt.Source(b, js)
			ctx := rt.Ctx(b, 10*time.Minute)
			perEvent := func(b *testing.B, f func() error) {
				b.ResetTimer()
				for b.Loop() {
					if err := f(); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(n*float64(b.N)/b.Elapsed().Seconds(), "events/s")
			}
			b.Run("read", func(b *testing.B) {
				perEvent(b, func() error {
					_, err := src.Read(ctx, replay.Range{}, func([]replay.Message) error { return nil })
					return err
				})
			})
			b.Run("hash", func(b *testing.B) {
				perEvent(b, func() error { _, err := replay.HashRange(ctx, src, replay.Range{}, nil); return err })
			})
			b.Run("report", func(b *testing.B) {
				perEvent(b, func() error {
					_, err := replay.BuildReport(ctx, src, replay.ReportOptions{From: rt.TS("2026-01-15T00:00:00Z"), To: rt.TS("2026-01-18T00:00:00Z"), GroupBy: []string{"tenant", "user", "model", "day"}})
					return err
				})
			})
			i := 0
			var mem replay.MemorySource
			if _, err := src.Read(ctx, replay.Range{}, func(m []replay.Message) error { mem.Messages = append(mem.Messages, m...); return nil }); err != nil {
				b.Fatal(err)
			}
			mem.Batch = 10_000
			b.Run("rebuild-from-memory", func(b *testing.B) {
				perEvent(b, func() error {
					i++
					_, err := replay.Rebuild(ctx, &mem, replay.RebuildOptions{Dir: filepath.Join(b.TempDir(), strconv.Itoa(i))})
					return err
				})
			})
			b.Run("rebuild", func(b *testing.B) {
				perEvent(b, func() error {
					i++
					_, err := replay.Rebuild(ctx, src, replay.RebuildOptions{Dir: filepath.Join(b.TempDir(), strconv.Itoa(i))})
					return err
				})
			})
		})
	}
}
