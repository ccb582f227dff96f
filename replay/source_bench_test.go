package replay_test

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/replay"
	rt "github.com/ledgerworks/ledger/replay/replaytest"
)

// fillSmall appends n small messages (about 100 bytes) spread over every
// partition and 64 tenants, as fast as the stream takes them.
func fillSmall(b *testing.B, js jetstream.JetStream, n int) {
	b.Helper()
	ctx := rt.Ctx(b, 5*time.Minute)
	data := make([]byte, 100)
	for i := range data {
		data[i] = byte('a' + i%26)
	}
	subjects := make([]string, 64)
	for i := range subjects {
		subjects[i] = events.Subject("tenant"+strconv.Itoa(i), "usage")
	}
	for i := 0; i < n; i++ {
		if _, err := js.PublishAsync(subjects[i%len(subjects)], data); err != nil {
			b.Fatal(err)
		}
		if i%10_000 == 9_999 {
			select {
			case <-js.PublishAsyncComplete():
			case <-ctx.Done():
				b.Fatal("appends did not complete")
			}
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		b.Fatal("appends did not complete")
	}
}

// BenchmarkStreamRead measures a raw read of 200,000 small messages through
// StreamSource: the whole stream, one partition and three partitions (go
// test -run - -bench StreamRead ./replay).
func BenchmarkStreamRead(b *testing.B) {
	const n = 200_000
	_, js := rt.Stream(b)
	fillSmall(b, js, n)
	ctx := rt.Ctx(b, 10*time.Minute)
	for _, c := range []struct {
		name  string
		parts []int
	}{{"all", nil}, {"one-partition", []int{3}}, {"three-partitions", []int{1, 5, 9}}} {
		for _, batch := range []int{0, 1000} {
			b.Run(fmt.Sprintf("%s/batch=%d", c.name, batch), func(b *testing.B) {
				src, err := replay.NewStreamSource(js, replay.StreamOptions{Partitions: c.parts, Batch: batch})
				if err != nil {
					b.Fatal(err)
				}
				var read int
				for b.Loop() {
					if _, err := src.Read(ctx, replay.Range{}, func(m []replay.Message) error {
						read += len(m)
						return nil
					}); err != nil {
						b.Fatal(err)
					}
				}
				if c.parts == nil && read != n*b.N {
					b.Fatalf("read %d messages in %d reads of %d", read, b.N, n)
				}
				b.ReportMetric(float64(read)/b.Elapsed().Seconds(), "events/s")
			})
		}
	}
}
