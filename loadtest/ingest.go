package loadtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ledgerworks/ledger/client"
	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/ledger"
)

// ingest: usage events per second published by the Go client and folded
// into Pebble, counted only once the projection has applied them, against
// raw JetStream async publish of one message per event (same size, no
// headers) on the same server.
func (e *env) ingest(ctx context.Context) error {
	pop, err := e.population(ctx, "main", e.cfg.Accounts, e.cfg.Tenants)
	if err != nil {
		return err
	}
	sample := pop.event(0, 0, time.Now())
	payload, err := sample.MarshalMsgpack()
	if err != nil {
		return err
	}
	_, base, err := e.rawPublish(ctx, "events", e.cfg.Events, 0, payload)
	if err != nil {
		return err
	}
	e.notef("ingest baseline: %d raw messages of %d bytes in %s", base.n, len(payload), base.elapsed.Round(time.Millisecond))
	res, err := e.ingestEvents(ctx, pop, e.cfg.Events, randomAccounts(pop.accounts))
	if err != nil {
		return err
	}
	e.report("ingest", "events_per_s", res.rate(), base.rate(), false)
	return nil
}

// randomAccounts picks accounts uniformly, with a fixed seed.
func randomAccounts(n int) func(int) int {
	r := rand.New(rand.NewPCG(1, 2))
	return func(int) int { return r.IntN(n) }
}

// everyAccount visits every account once per n events, in a scattered order
// (7919 is prime and divides no count of accounts made of 2s and 5s).
func everyAccount(n int) func(int) int {
	stride := 7919
	if n%stride == 0 {
		stride = 7907
	}
	return func(i int) int { return int((int64(i) * int64(stride)) % int64(n)) }
}

type rate struct {
	n       int
	elapsed time.Duration
}

func (r rate) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.n) / r.elapsed.Seconds()
}

// ingestEvents publishes n usage events of pop with a Producer and waits until
// the projection has applied them. It verifies the totals afterwards.
func (e *env) ingestEvents(ctx context.Context, pop *population, n int, pick func(int) int) (rate, error) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	first, err := ledger.StreamLastSeq(ctx, e.js, events.StreamName)
	if err != nil {
		return rate{}, err
	}
	pr, err := client.NewProducer(e.nc, e.cfg.Producer)
	if err != nil {
		return rate{}, err
	}
	start := time.Now()
	now := start
	sent := 0
	for i := range n {
		if i%4096 == 0 {
			now = time.Now()
			if ctx.Err() != nil {
				break
			}
		}
		if err := pr.Record(ctx, pop.event(pop.next, pick(i), now)); err != nil {
			pr.Close(context.Background())
			return rate{}, err
		}
		pop.next++
		sent++
	}
	if err := pr.Close(ctx); err != nil {
		return rate{}, fmt.Errorf("producer: %w", err)
	}
	last, err := ledger.StreamLastSeq(ctx, e.js, events.StreamName)
	if err != nil {
		return rate{}, err
	}
	if err := e.projector().WaitApplied(ctx, last); err != nil {
		e.notef("ingest of %d events timed out after %s; reporting what was applied", n, e.cfg.Timeout)
	}
	elapsed := time.Since(start)
	applied, err := e.requestsTotal(pop)
	if err != nil {
		return rate{}, err
	}
	got := applied - int64(pop.recorded)
	if msgs := last - first; msgs > 0 {
		e.notef("ingest: %d events in %d stream messages (%.0f per message) in %s", sent, msgs, float64(sent)/float64(msgs), elapsed.Round(time.Millisecond))
	}
	pop.recorded += sent
	if applied == int64(pop.recorded) {
		e.notef("verified: the projection counts each of the %d events of population %s exactly once", pop.recorded, pop.name)
	} else if ctx.Err() == nil {
		return rate{}, fmt.Errorf("population %s: the projection counts %d requests, want %d", pop.name, applied, pop.recorded)
	}
	return rate{n: int(got), elapsed: elapsed}, nil
}

// requestsTotal sums the all-time requests of a population's tenants: one
// per usage event applied.
func (e *env) requestsTotal(pop *population) (int64, error) {
	var sum int64
	for _, t := range pop.tenants {
		tot, _, err := e.projector().Totals(t)
		if err != nil {
			return 0, err
		}
		sum += tot[events.MetricRequests]
	}
	return sum, nil
}

// rawStream is a stream of the same server that baselines publish to and
// read from, with the ledger stream's storage but none of its rules.
type rawStream struct {
	name    string
	subject string
	msgs    int
}

// rawPublish publishes n messages of payload (fewer if d > 0 passes first)
// to a fresh raw stream named after name, with JetStream async publish (no
// headers), and waits for every acknowledgement.
func (e *env) rawPublish(ctx context.Context, name string, n int, d time.Duration, payload []byte) (*rawStream, rate, error) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	if old := e.raws[name]; old != nil {
		e.js.DeleteStream(ctx, old.name)
		delete(e.raws, name)
	}
	raw := &rawStream{name: "BENCHRAW_" + e.prefix + "_" + name, subject: "benchraw." + e.prefix + "." + name}
	if _, err := e.js.CreateStream(ctx, jetstream.StreamConfig{
		Name: raw.name, Subjects: []string{raw.subject + ".>"}, Storage: jetstream.FileStorage, Replicas: max(e.cfg.Replicas, 1),
	}); err != nil {
		return nil, rate{}, fmt.Errorf("create raw stream: %w", err)
	}
	e.raws[name] = raw
	js, err := jetstream.New(e.nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return nil, rate{}, err
	}
	// One subject per tenant, like the ledger's.
	subjects := make([]string, e.cfg.Tenants)
	for i := range subjects {
		subjects[i] = raw.subject + "." + strconv.Itoa(i)
	}
	start := time.Now()
	var deadline time.Time
	if d > 0 {
		deadline = start.Add(d)
	}
	for i := range n {
		if i%1024 == 0 && (ctx.Err() != nil || !deadline.IsZero() && time.Now().After(deadline)) {
			n = i
			break
		}
		// A long stall wait: with fsync per write (--durability always) the
		// server acknowledges slowly and the window is full for a while.
		if _, err := js.PublishAsync(subjects[i%len(subjects)], payload, jetstream.WithStallWait(e.cfg.Timeout)); err != nil {
			return nil, rate{}, fmt.Errorf("raw publish: %w", err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return nil, rate{}, fmt.Errorf("raw publish: %w", ctx.Err())
	}
	elapsed := time.Since(start)
	s, err := e.js.Stream(ctx, raw.name)
	if err != nil {
		return nil, rate{}, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, rate{}, err
	}
	raw.msgs = int(info.State.Msgs)
	if raw.msgs != n {
		return nil, rate{}, fmt.Errorf("raw stream holds %d messages, %d published", raw.msgs, n)
	}
	return raw, rate{n: n, elapsed: elapsed}, nil
}
