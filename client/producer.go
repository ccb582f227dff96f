package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/ledgerworks/ledger/events"
)

// ProducerOptions configure a Producer. The zero value is usable.
type ProducerOptions struct {
	// MaxBatch is the most events in one stream message (default 512).
	MaxBatch int
	// Linger is how long a partial batch waits for more events (default 2 ms).
	Linger time.Duration
	// MaxInFlight is the most batches published but not yet acknowledged;
	// Record blocks beyond it (default 256).
	MaxInFlight int
	// MaxOpen is the most events held in partial batches across tenants
	// before all of them are sent (default 65,536).
	MaxOpen int
	// Retries is how many times a batch whose acknowledgement failed is
	// published again, with the same message ID (default 8).
	Retries int
	// MaxSkew refuses events whose time is further than this from the
	// producer's clock (default 5 minutes; the ledger service uses the same).
	MaxSkew time.Duration
	// Now is the producer's clock (default time.Now).
	Now func() time.Time
}

func (o ProducerOptions) withDefaults() ProducerOptions {
	if o.MaxBatch <= 0 || o.MaxBatch > events.MaxBatchEvents {
		o.MaxBatch = 512
	}
	if o.Linger <= 0 {
		o.Linger = 2 * time.Millisecond
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 256
	}
	if o.MaxOpen <= 0 {
		o.MaxOpen = 1 << 16
	}
	if o.Retries <= 0 {
		o.Retries = 8
	}
	if o.MaxSkew <= 0 {
		o.MaxSkew = 5 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Producer publishes usage events to the ledger stream in batches.
type Producer struct {
	js   jetstream.JetStream
	opts ProducerOptions

	mu     sync.Mutex
	open   map[string]*openBatch // by tenant
	nOpen  int
	closed bool

	slots    chan struct{} // one per batch published and not yet acknowledged
	inflight chan *sent    // published batches and barriers, in order
	errMu    sync.Mutex
	errs     []error

	stop     chan struct{}
	lingerWG sync.WaitGroup
	ackDone  chan struct{}
}

type openBatch struct {
	events []events.Event
	since  time.Time
}

// sent is a published batch awaiting its acknowledgement, or a barrier
// (flushed != nil) that Flush waits on.
type sent struct {
	msg     *nats.Msg
	id      string
	n       int
	future  jetstream.PubAckFuture
	flushed chan struct{}
}

// NewProducer returns a producer publishing through nc's JetStream.
func NewProducer(nc *nats.Conn, opts ProducerOptions) (*Producer, error) {
	if nc == nil {
		return nil, errors.New("producer: nil connection")
	}
	opts = opts.withDefaults()
	// An acknowledgement that never comes (the stream's leader died with
	// the batch) must time out, so that the batch is sent again (same
	// message id: never counted twice) instead of holding every later
	// Flush forever.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(opts.MaxInFlight*2), jetstream.WithPublishAsyncTimeout(5*time.Second))
	if err != nil {
		return nil, err
	}
	p := &Producer{
		js: js, opts: opts, open: map[string]*openBatch{},
		slots:    make(chan struct{}, opts.MaxInFlight),
		inflight: make(chan *sent, opts.MaxInFlight+1),
		stop:     make(chan struct{}), ackDone: make(chan struct{}),
	}
	p.lingerWG.Add(1)
	go p.lingerLoop()
	go p.ackLoop()
	return p, nil
}

// NewID returns a unique event ID. Keep the ID with the event: sending the
// same event again with the same ID is how a retry stays exactly-once.
func NewID() string { return nuid.Next() }

// Record validates ev and queues it for publishing. It returns a typed error
// for a bad event (nothing is queued) and blocks while the server is behind.
// Publish failures surface from Flush or Close.
func (p *Producer) Record(ctx context.Context, ev events.Event) error {
	if ev.Time.IsZero() {
		ev.Time = p.opts.Now().UTC()
	}
	if err := ev.Validate(); err != nil {
		return err
	}
	if events.ClassOf(ev.Type) != events.ClassUsage {
		return &events.Error{Code: events.CodeInvalidArgument, Message: fmt.Sprintf("a producer records usage; %s goes through the ledger service", ev.Type), Details: map[string]any{"type": string(ev.Type)}}
	}
	if err := events.CheckSkew(&ev, p.opts.Now(), p.opts.MaxSkew); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("producer: closed")
	}
	b := p.open[ev.Tenant]
	if b == nil {
		b = &openBatch{since: p.opts.Now()}
		p.open[ev.Tenant] = b
	}
	b.events = append(b.events, ev)
	p.nOpen++
	var err error
	if len(b.events) >= p.opts.MaxBatch {
		err = p.sendLocked(ctx, ev.Tenant)
	} else if p.nOpen >= p.opts.MaxOpen {
		err = p.sendAllLocked(ctx)
	}
	if err != nil && len(b.events) > 0 && p.open[ev.Tenant] == b {
		// Not sent (no slot before ctx ended): the event is not queued.
		// Everything queued before it stays in its open batch.
		b.events = b.events[:len(b.events)-1]
		p.nOpen--
	}
	return err
}

func (p *Producer) sendAllLocked(ctx context.Context) error {
	for t := range p.open {
		if err := p.sendLocked(ctx, t); err != nil {
			return err
		}
	}
	return nil
}

// sendLocked publishes a tenant's open batch. It blocks when MaxInFlight
// batches await acknowledgement: that is the producer's backpressure.
func (p *Producer) sendLocked(ctx context.Context, tenant string) error {
	b := p.open[tenant]
	if b == nil || len(b.events) == 0 {
		delete(p.open, tenant)
		return nil
	}
	data, err := events.EncodeBatch(b.events)
	if err != nil {
		return err
	}
	// Take an in-flight slot before the batch leaves its open slot, so at
	// most MaxInFlight batches are ever unacknowledged and a Record that
	// gives up waiting loses nothing that was queued.
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	delete(p.open, tenant)
	p.nOpen -= len(b.events)
	msg := nats.NewMsg(events.Subject(tenant, events.ClassUsage))
	msg.Data = data
	s := &sent{msg: msg, id: events.BatchID(b.events), n: len(b.events)}
	s.future, err = p.js.PublishMsgAsync(msg, jetstream.WithMsgID(s.id))
	if err != nil {
		s.future = nil // the ack loop publishes it again synchronously
	}
	p.inflight <- s // never blocks long: slots bound what is queued
	return nil
}

func (p *Producer) lingerLoop() {
	defer p.lingerWG.Done()
	t := time.NewTicker(p.opts.Linger)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.mu.Lock()
			now := p.opts.Now()
			for tenant, b := range p.open {
				if now.Sub(b.since) >= p.opts.Linger {
					if err := p.sendLocked(context.Background(), tenant); err != nil {
						p.fail(err)
					}
				}
			}
			p.mu.Unlock()
		}
	}
}

// ackLoop waits for acknowledgements in publish order and republishes a
// failed batch with the same message ID, which the stream deduplicates.
func (p *Producer) ackLoop() {
	defer close(p.ackDone)
	for s := range p.inflight {
		if s.flushed != nil {
			close(s.flushed)
			continue
		}
		if s.future == nil {
			p.retry(s, errors.New("async publish refused"))
		} else {
			select {
			case <-s.future.Ok():
			case err := <-s.future.Err():
				p.retry(s, err)
			}
		}
		<-p.slots
	}
}

func (p *Producer) retry(s *sent, cause error) {
	backoff := 50 * time.Millisecond
	for attempt := 1; attempt <= p.opts.Retries; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := p.js.PublishMsg(ctx, s.msg, jetstream.WithMsgID(s.id))
		cancel()
		if err == nil {
			return
		}
		cause = err
		time.Sleep(backoff) // retry pacing, not a test wait
		backoff = min(2*backoff, 2*time.Second)
	}
	p.fail(&events.Error{Code: events.CodeUnavailable, Message: fmt.Sprintf("batch %s of %d events not acknowledged after %d retries: %v", s.id, s.n, p.opts.Retries, cause), Details: map[string]any{"batch": s.id, "events": s.n}, Suggestion: "record the same events again (same IDs) once the server is back; they will not be counted twice"})
}

func (p *Producer) fail(err error) {
	p.errMu.Lock()
	p.errs = append(p.errs, err)
	p.errMu.Unlock()
}

// Flush sends every partial batch and waits until every batch sent so far is
// acknowledged by the stream. It returns the publish failures since the last
// Flush.
func (p *Producer) Flush(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return errors.New("producer: closed")
	}
	err := p.sendAllLocked(ctx)
	barrier := &sent{flushed: make(chan struct{})}
	if err == nil {
		select {
		case p.inflight <- barrier:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	p.mu.Unlock()
	if err != nil {
		return err
	}
	select {
	case <-barrier.flushed:
	case <-ctx.Done():
		return ctx.Err()
	}
	p.errMu.Lock()
	defer p.errMu.Unlock()
	err = errors.Join(p.errs...)
	p.errs = nil
	return err
}

// Close flushes and stops the producer.
func (p *Producer) Close(ctx context.Context) error {
	err := p.Flush(ctx)
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return err
	}
	p.closed = true
	p.mu.Unlock()
	close(p.stop)
	p.lingerWG.Wait()
	close(p.inflight)
	select {
	case <-p.ackDone:
	case <-ctx.Done():
		return ctx.Err()
	}
	return err
}
