package client_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ledgerworks/ledger/client"
	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/internal/ledgertest"
	"github.com/ledgerworks/ledger/ledger"
)

// A producer whose server is gone blocks in Record once MaxInFlight batches
// await acknowledgement (bounded memory, nothing dropped); when the server is
// back every batch lands exactly once.
func TestProducerBlocksWhileServerIsDownThenDeliversOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv := ledgertest.StartServer(t, "")
	nc := ledgertest.Connect(t, srv.URL())
	js := ledgertest.JetStream(t, nc)
	if _, err := ledger.EnsureStream(ctx, js, ledger.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	p, err := client.NewProducer(nc, client.ProducerOptions{MaxBatch: 10, MaxInFlight: 3, Linger: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	srv.Shutdown()
	ledgertest.Eventually(t, 10*time.Second, "the client to notice", func() bool { return !nc.IsConnected() })

	now := time.Now()
	recorded := 0
	record := func(ctx context.Context) error {
		ev := events.New(fmt.Sprintf("e%d", recorded), "acme", now, nil, &events.UsageRecorded{Amounts: events.Amounts{Tokens: 1}})
		err := p.Record(ctx, ev)
		if err == nil {
			recorded++
		}
		return err
	}
	// Three full batches in flight, and a fourth filling up, are accepted.
	for range 3*10 + 9 {
		if err := record(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// The event that completes the fourth batch must wait for a slot.
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	if err := record(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Record with every slot taken: %v, want it to block until the deadline", err)
	}

	srv.Restart()
	if err := p.Close(ctx); err != nil {
		t.Fatalf("close after the server came back: %v", err)
	}
	// The stream holds each accepted event once (a retried batch keeps its
	// message id), and the refused one not at all.
	cons, err := js.OrderedConsumer(ctx, events.StreamName, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	total := 0
	for total < recorded {
		batch, err := cons.Fetch(100, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			evs, err := events.DecodeBatch(m.Data())
			if err != nil {
				t.Fatal(err)
			}
			for _, ev := range evs {
				seen[ev.ID]++
				total++
			}
		}
		if n == 0 {
			break
		}
	}
	if total != recorded || len(seen) != recorded {
		t.Fatalf("stream holds %d events (%d distinct), %d were accepted", total, len(seen), recorded)
	}
}
