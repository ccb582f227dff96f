package ledger

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ledgerworks/ledger/metrics"
)

// A partition's lag counts the messages of that partition past the applied
// sequence, whatever other partitions hold in between, with the stream time
// of the first of them. On a stream without direct gets it is the span from
// that first message to the partition's last, which counts the others'
// messages in between too.
func TestStreamStateCountsEachPartitionsLag(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := StartServer(ServerOptions{Listen: "127.0.0.1:-1", StoreDir: t.TempDir(), Durability: SyncPeriodic})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := jetstream.StreamConfig{Name: "LAGS", Subjects: []string{"ledger.ev.>"}, AllowDirect: true}
	if _, err := js.CreateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	var times []time.Time
	for _, subj := range []string{"ledger.ev.3.a.usage", "ledger.ev.5.b.usage", "ledger.ev.3.a.usage", "ledger.ev.5.b.usage", "ledger.ev.3.a.usage"} {
		if _, err := js.Publish(ctx, subj, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	stream, err := js.Stream(ctx, "LAGS")
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= 5; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		times = append(times, m.Time)
	}
	check := func(what string, applied uint64, want ...metrics.PartitionLag) {
		t.Helper()
		stream, err := js.Stream(ctx, "LAGS") // its cached info says whether direct gets are allowed
		if err != nil {
			t.Fatal(err)
		}
		st, err := streamState(ctx, js, stream, []int{3, 5, 7}, applied)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if st.LastSeq != 5 {
			t.Errorf("%s: last sequence %d, want 5", what, st.LastSeq)
		}
		if len(st.Lag) != len(want) {
			t.Fatalf("%s: lag %+v, want %+v", what, st.Lag, want)
		}
		for i := range want {
			if g, w := st.Lag[i], want[i]; g.Partition != w.Partition || g.Messages != w.Messages || !g.Oldest.Equal(w.Oldest) {
				t.Errorf("%s: partition %d lags %d messages since %v, want %d since %v", what, w.Partition, g.Messages, g.Oldest, w.Messages, w.Oldest)
			}
		}
	}
	check("direct, applied 1", 1,
		metrics.PartitionLag{Partition: 3, Messages: 2, Oldest: times[2]},
		metrics.PartitionLag{Partition: 5, Messages: 2, Oldest: times[1]},
		metrics.PartitionLag{Partition: 7})
	check("direct, applied 3", 3,
		metrics.PartitionLag{Partition: 3, Messages: 1, Oldest: times[4]},
		metrics.PartitionLag{Partition: 5, Messages: 1, Oldest: times[3]},
		metrics.PartitionLag{Partition: 7})
	check("direct, caught up", 5, metrics.PartitionLag{Partition: 3}, metrics.PartitionLag{Partition: 5}, metrics.PartitionLag{Partition: 7})

	cfg.AllowDirect = false
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	check("no direct gets, applied 1", 1,
		metrics.PartitionLag{Partition: 3, Messages: 3, Oldest: times[2]},
		metrics.PartitionLag{Partition: 5, Messages: 3, Oldest: times[1]},
		metrics.PartitionLag{Partition: 7})
	check("no direct gets, caught up", 5, metrics.PartitionLag{Partition: 3}, metrics.PartitionLag{Partition: 5}, metrics.PartitionLag{Partition: 7})
}
