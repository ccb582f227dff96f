package loadtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/ledger"
	"github.com/ledgerworks/ledger/projections"
)

// rawFetchBatch is the pull batch of the raw read baseline.
const rawFetchBatch = 10_000

// rebuild: events per second folded by a rebuild of the projection from the
// ledger stream into a fresh Pebble directory, against a raw read of the same
// events stored one message per event (the naive layout) with a pull consumer
// in batches of 10,000, on the same server. A note gives the raw read of the
// ledger stream itself.
func (e *env) rebuild(ctx context.Context) error {
	pop, err := e.population(ctx, "main", e.cfg.Accounts, e.cfg.Tenants)
	if err != nil {
		return err
	}
	if err := e.ensureIngested(ctx, pop, e.cfg.Events); err != nil {
		return err
	}
	raw := e.raws["events"]
	if raw == nil {
		sample := pop.event(0, 0, time.Now())
		payload, err := sample.MarshalMsgpack()
		if err != nil {
			return err
		}
		if raw, _, err = e.rawPublish(ctx, "events", e.cfg.Events, 0, payload); err != nil {
			return err
		}
	}
	// A connection of its own, over TCP, as a rebuild tool would have.
	nc, err := nats.Connect(e.l.ClientURL(), nats.Name("ledger-bench-rebuild"))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	base, _, err := rawRead(ctx, js, raw.name, e.cfg.Timeout)
	if err != nil {
		return fmt.Errorf("raw read: %w", err)
	}
	ledgerRead, evCount, err := rawRead(ctx, js, events.StreamName, e.cfg.Timeout)
	if err != nil {
		return fmt.Errorf("raw read of the ledger stream: %w", err)
	}
	e.notef("rebuild: raw read of the ledger stream: %d messages holding %d events in %s (%.0f msgs/s, %.0f events/s)",
		ledgerRead.n, evCount, ledgerRead.elapsed.Round(time.Millisecond), ledgerRead.rate(), float64(evCount)/ledgerRead.elapsed.Seconds())
	res, err := e.rebuildOnce(ctx, js, evCount)
	if err != nil {
		return err
	}
	e.report("rebuild", "events_per_s", res.rate(), base.rate(), false)
	return nil
}

// rawRead reads a whole stream with an ephemeral pull consumer in batches of
// rawFetchBatch and returns messages per second and the number of events the
// messages hold (ledger batches: the msgpack array length; other messages
// count one).
func rawRead(ctx context.Context, js jetstream.JetStream, stream string, timeout time.Duration) (rate, int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return rate{}, 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return rate{}, 0, err
	}
	want := info.State.Msgs
	cons, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{
		AckPolicy: jetstream.AckNonePolicy, DeliverPolicy: jetstream.DeliverAllPolicy, InactiveThreshold: time.Minute,
	})
	if err != nil {
		return rate{}, 0, err
	}
	defer s.DeleteConsumer(context.Background(), cons.CachedInfo().Name)
	start := time.Now()
	var got uint64
	evs := 0
	for got < want {
		batch, err := cons.Fetch(int(min(rawFetchBatch, want-got)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return rate{}, 0, err
		}
		for m := range batch.Messages() {
			got++
			evs += eventsIn(m.Data())
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return rate{}, 0, err
		}
		if ctx.Err() != nil {
			return rate{}, 0, ctx.Err()
		}
	}
	return rate{n: int(got), elapsed: time.Since(start)}, evs, nil
}

// eventsIn returns the length of a msgpack array header (a ledger batch), or
// 1 for anything else.
func eventsIn(b []byte) int {
	if len(b) == 0 {
		return 1
	}
	switch c := b[0]; {
	case c >= 0x90 && c <= 0x9f:
		return int(c & 0x0f)
	case c == 0xdc && len(b) >= 3:
		return int(b[1])<<8 | int(b[2])
	case c == 0xdd && len(b) >= 5:
		return int(b[1])<<24 | int(b[2])<<16 | int(b[3])<<8 | int(b[4])
	}
	return 1
}

// rebuildOnce folds the whole ledger stream into a fresh store with a new
// projector, as a rebuild does, and returns events folded per second.
func (e *env) rebuildOnce(ctx context.Context, js jetstream.JetStream, evCount int) (rate, error) {
	dir, err := os.MkdirTemp("", "ledger-bench-rebuild-")
	if err != nil {
		return rate{}, err
	}
	defer os.RemoveAll(dir)
	store, err := projections.OpenStore(dir, projections.StoreOptions{})
	if err != nil {
		return rate{}, err
	}
	defer store.Close()
	last, err := ledger.StreamLastSeq(ctx, js, events.StreamName)
	if err != nil {
		return rate{}, err
	}
	p, err := projections.NewProjector(js, store, projections.ProjectorOptions{})
	if err != nil {
		return rate{}, err
	}
	rctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- p.Run(rctx) }()
	waitErr := p.WaitApplied(rctx, last)
	elapsed := time.Since(start)
	cancel()
	if err := <-done; err != nil {
		return rate{}, err
	}
	if waitErr != nil {
		return rate{}, fmt.Errorf("rebuild reached sequence %d of %d in %s: %w", p.Applied(), last, e.cfg.Timeout, errTimeout)
	}
	if r := p.Rejected(); r != 0 {
		return rate{}, fmt.Errorf("rebuild refused %d messages or events", r)
	}
	return rate{n: evCount, elapsed: elapsed}, nil
}
