package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ledgerworks/ledger/events"
)

// ProjectorOptions configure a Projector. The zero value follows every
// partition of the ledger stream.
type ProjectorOptions struct {
	// Stream is the ledger stream (default events.StreamName).
	Stream string
	// Partitions this projector owns (default all).
	Partitions []int
	// MaxBatch caps the stream messages folded into one Pebble commit
	// (default 4096), and MaxBatchBytes their size (default 4 MiB, about
	// 28,000 usage events; at least one message). Under load batches grow to
	// them; idle, every message commits at once. The consumer buffers at
	// most twice MaxBatchBytes (at least 2 MiB, more than a message can be).
	MaxBatch      int
	MaxBatchBytes int
	// MaxTenants caps the tenant states kept in memory (default 100,000).
	MaxTenants int
	// BeforeFold, when set, is called before each batch of stream messages
	// is folded. Tests block in it to make the projection fall behind the
	// stream for as long as they choose; it must return once ctx is done.
	BeforeFold func(ctx context.Context)
	Logger     *slog.Logger
}

func (o ProjectorOptions) withDefaults() ProjectorOptions {
	if o.Stream == "" {
		o.Stream = events.StreamName
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 4096
	}
	if o.MaxBatchBytes <= 0 {
		o.MaxBatchBytes = 4 << 20
	}
	if o.MaxTenants <= 0 {
		o.MaxTenants = 100_000
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Filters returns the stream filter subjects of the owned partitions.
func (o ProjectorOptions) Filters() []string {
	if len(o.Partitions) == 0 {
		return []string{events.SubjectPrefix + ".>"}
	}
	f := make([]string, len(o.Partitions))
	for i, p := range o.Partitions {
		f[i] = events.PartitionFilter(p)
	}
	return f
}

// Projector folds the ledger stream into a Store and serves reads of the
// result. Run works in two stages: one goroutine decodes, validates and
// deduplicates a batch while another folds and commits the batch before
// it, in stream order; reads run concurrently and always see the state at a
// whole committed batch.
type Projector struct {
	js    jetstream.JetStream
	store *Store
	opts  ProjectorOptions
	log   *slog.Logger

	mu       sync.RWMutex // held for writing while a batch is folded and committed
	tenants  map[string]*Tenant
	counters map[CounterKey]int64 // Apply's deltas, reused

	applied  atomic.Uint64
	rejected atomic.Uint64
	stats    projectorStats
	waitMu   sync.Mutex
	advanced chan struct{} // closed and replaced after every commit
}

// NewProjector returns a projector that resumes after the store's applied
// sequence.
func NewProjector(js jetstream.JetStream, store *Store, opts ProjectorOptions) (*Projector, error) {
	opts = opts.withDefaults()
	for _, part := range opts.Partitions {
		if part < 0 || part >= events.Partitions {
			return nil, fmt.Errorf("partition %d out of range 0-%d", part, events.Partitions-1)
		}
	}
	applied, err := store.Applied()
	if err != nil {
		return nil, fmt.Errorf("read applied sequence: %w", err)
	}
	p := &Projector{js: js, store: store, opts: opts, log: opts.Logger, tenants: map[string]*Tenant{}, advanced: make(chan struct{})}
	p.applied.Store(applied)
	open, err := store.openReservations()
	if err != nil {
		return nil, fmt.Errorf("count open reservations: %w", err)
	}
	p.stats.open.add(open)
	return p, nil
}

// Filters returns the stream filter subjects the projector folds.
func (p *Projector) Filters() []string { return p.opts.Filters() }

// Applied returns the last stream sequence folded into the store.
func (p *Projector) Applied() uint64 { return p.applied.Load() }

// Rejected returns how many events or messages were refused while folding:
// messages not on a ledger event subject (events.ParseSubject) or that do
// not decode, and events that are invalid or not on their own tenant's
// subject of their class (events.CheckPlacement).
func (p *Projector) Rejected() uint64 { return p.rejected.Load() }

// Advanced returns a channel that is closed at the projector's next
// commit: watchers (a dashboard) take it, wait, read, and take it again.
func (p *Projector) Advanced() <-chan struct{} {
	p.waitMu.Lock()
	defer p.waitMu.Unlock()
	return p.advanced
}

// WaitApplied blocks until the projection covers stream sequence seq.
func (p *Projector) WaitApplied(ctx context.Context, seq uint64) error {
	for {
		p.waitMu.Lock()
		ch := p.advanced
		p.waitMu.Unlock()
		if p.applied.Load() >= seq {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for sequence %d (applied %d): %w", seq, p.applied.Load(), ctx.Err())
		}
	}
}

// Run folds the stream until ctx is done. It reads with an ordered consumer
// starting right after the stored applied sequence, never from a consumer's
// acknowledgement floor: a commit can be lost with the process, and then the
// same messages are simply folded again.
//
// If the consumer stalls (nothing arrives while the stream holds messages
// of the projection's partitions past the applied sequence, as can happen
// when a NATS node dies and the consumer's own reset does not recover), Run
// starts a new consumer from the applied sequence.
//
// A consumer that cannot be made or that fails (the cluster is electing a
// leader, or healing) is made again after a second, for as long as ctx
// lasts; only a failure to fold ends Run.
func (p *Projector) Run(ctx context.Context) error {
	for {
		stalled, err := p.follow(ctx)
		var cerr consumerError
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.As(err, &cerr):
			p.log.Warn("projector consumer failed; making a new one", "applied_seq", p.applied.Load(), "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
		case err != nil:
			return err
		case stalled:
			p.log.Warn("projector consumer stalled; starting a new one", "applied_seq", p.applied.Load())
		default:
			return nil
		}
	}
}

// consumerError is a failure of the stream consumer, not of the fold: Run
// makes a new consumer.
type consumerError struct{ error }

func (e consumerError) Unwrap() error { return e.error }

// stallCheck is how often a consumer that delivers nothing is checked
// against the stream.
const stallCheck = 5 * time.Second

// follow folds what one ordered consumer delivers until ctx is done, an
// error, or the consumer stalls (stalled true).
func (p *Projector) follow(ctx context.Context) (stalled bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cons, err := p.js.OrderedConsumer(ctx, p.opts.Stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: p.opts.Filters(),
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    p.applied.Load() + 1,
	})
	if err != nil {
		if ctx.Err() != nil {
			return false, nil // stopped before it began: not a failure
		}
		return false, consumerError{fmt.Errorf("create consumer on %s: %w", p.opts.Stream, err)}
	}
	// A short channel and a byte limit on the pulls bound what waits in
	// memory by configuration, whatever the size of the messages.
	ch := make(chan jetstream.Msg, min(p.opts.MaxBatch, 256))
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case ch <- m:
		case <-ctx.Done():
		}
	}, jetstream.PullMaxMessagesWithBytesLimit(p.opts.MaxBatch, max(2*p.opts.MaxBatchBytes, 2<<20)),
		// Short pulls with frequent heartbeats: when the NATS node serving
		// the consumer dies, two missed heartbeats (2 s, not the default's
		// tens of seconds) make the ordered consumer start again elsewhere
		// from the last folded sequence.
		jetstream.PullExpiry(5*time.Second), jetstream.PullHeartbeat(time.Second))
	if err != nil {
		return false, consumerError{fmt.Errorf("consume %s: %w", p.opts.Stream, err)}
	}
	defer cc.Stop()

	// Two stages: this goroutine decodes, validates and deduplicates the
	// next batch while another folds and commits the last one, so that the
	// fold has a core of its own when there is one (ingest ran ~1.4× the
	// raw publish rate with one stage, the fold alone trailing the
	// producers on one of two cores). The hand-over is unbuffered: at most
	// two decoded batches are in memory, one folding and one waiting (a
	// third, buffered, cost ~140 MB of peak RSS at 1,000,000 accounts).
	commits := make(chan *batch)
	failed := make(chan error, 1)
	folding := make(chan struct{})
	go func() {
		defer close(folding)
		for b := range commits {
			if p.opts.BeforeFold != nil {
				p.opts.BeforeFold(ctx)
			}
			if err := p.commit(b); err != nil {
				failed <- err
				for range commits { // drain: nothing more is committed
				}
				return
			}
		}
	}()
	// Returning waits for the batches handed over to be committed: the next
	// consumer starts after the applied sequence.
	defer func() { close(commits); <-folding }()
	// The hand-over is unbuffered, so stage two has committed every batch
	// but the last one handed over: only that one can be uncommitted.
	var handed *batch
	prepared := p.applied.Load()

	check := time.NewTicker(stallCheck)
	defer check.Stop()
	delivered := false // since the last check
	pulled := make([]jetstream.Msg, 0, p.opts.MaxBatch)
	for {
		select {
		case <-ctx.Done():
			return false, nil
		case err := <-failed:
			return false, err
		case <-check.C:
			if !delivered && p.behind(ctx) {
				return true, nil
			}
			delivered = false
			continue
		case m := <-ch:
			pulled = append(pulled[:0], m)
		}
		delivered = true
		size := len(pulled[0].Data())
	drain:
		for len(pulled) < p.opts.MaxBatch && size < p.opts.MaxBatchBytes {
			select {
			case m := <-ch:
				pulled = append(pulled, m)
				size += len(m.Data())
			default:
				break drain
			}
		}
		var pending []*batch
		if handed != nil && handed.last > p.applied.Load() {
			pending = []*batch{handed} // the store does not hold its IDs yet
		}
		msgs, err := messagesOf(pulled)
		if err != nil {
			return false, err
		}
		b, err := p.prepare(msgs, prepared, pending)
		if err != nil {
			return false, err
		}
		if b == nil {
			continue
		}
		select {
		case commits <- b:
		case err := <-failed:
			return false, err
		case <-ctx.Done():
			return false, nil
		}
		handed = b
		prepared = b.last
	}
}

// behind reports whether the stream holds a message of the projection's
// partitions past its applied sequence. A failed look says no: a stream
// that cannot be read now is no reason to start over.
func (p *Projector) behind(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, stallCheck)
	defer cancel()
	s, err := p.js.Stream(ctx, p.opts.Stream)
	if err != nil {
		return false
	}
	applied := p.applied.Load()
	for _, f := range p.opts.Filters() {
		m, err := s.GetLastMsgForSubject(ctx, f)
		if err == nil && m.Sequence > applied {
			return true
		}
	}
	return false
}

// Message is a stream message as the fold sees it.
type Message struct {
	Seq     uint64
	Subject string
	Data    []byte
}

// messagesOf reads the stream sequence of each message from its reply
// subject.
func messagesOf(batch []jetstream.Msg) ([]Message, error) {
	msgs := make([]Message, 0, len(batch))
	for _, m := range batch {
		md, err := m.Metadata()
		if err != nil {
			return nil, fmt.Errorf("message metadata: %w", err)
		}
		msgs = append(msgs, Message{Seq: md.Sequence.Stream, Subject: m.Subject(), Data: m.Data()})
	}
	return msgs, nil
}

// Apply folds messages, in stream order, into one commit. It is exported for
// rebuilds that read the stream themselves. Apply calls must not overlap.
//
// It trusts the subject, never the payload: a message whose subject is not
// a ledger event subject of its tenant's own partition is refused whole,
// and an event that is not its tenant's or whose type does not belong on
// the subject's class is refused alone (events.CheckPlacement) while the
// message's other events fold. Either way the applied sequence moves past
// the message, and a refused event's ID stays unseen.
//
// Decoding, validation and deduplication against the store happen before
// the write lock is taken (prepare; reading the store unlocked is safe,
// since only commit writes it and Pebble shows whole commits), so readers
// wait only for the fold and the commit. Run's own loop overlaps the two
// stages of consecutive batches (see follow).
func (p *Projector) Apply(msgs []Message) error {
	b, err := p.prepare(msgs, p.applied.Load(), nil)
	if err != nil || b == nil {
		return err
	}
	return p.commit(b)
}

// batch is stream messages decoded, validated and deduplicated: the first
// of Apply's two stages, which needs no lock. follow prepares the next
// batch while the last one is folded and committed.
type batch struct {
	work []foldWork
	seen []SeenID
	ids  map[eventKey]struct{} // what it folds, for batches prepared before it commits
	last uint64
	st   foldStats // added to p.stats once committed
}

type foldWork struct {
	tenant string
	meta   Meta
	evs    []*events.Event // valid, not seen before
}

type eventKey struct{ tenant, id string }

// prepare reads the messages after sequence after. pending are the batches
// prepared before and not committed yet: the store does not hold their
// event IDs, so prepare drops those itself. It returns nil when no message
// is new.
func (p *Projector) prepare(msgs []Message, after uint64, pending []*batch) (*batch, error) {
	b := &batch{ids: map[eventKey]struct{}{}}
	for _, m := range msgs {
		if m.Seq <= after {
			continue // already folded (a redelivery after a reconnect)
		}
		b.last = m.Seq
		if events.IsBarrier(m.Subject) {
			continue // a new owner's mark of the partition's end: no event
		}
		b.st.messages++
		tenant, class, err := events.ParseSubject(m.Subject)
		if err != nil {
			p.reject("subject", m.Seq, err)
			continue
		}
		evs, err := events.DecodeBatch(m.Data)
		if err != nil {
			p.reject("message", m.Seq, err)
			continue
		}
		f := foldWork{tenant: tenant, meta: Meta{Seq: m.Seq, Decision: class == events.ClassDecision}, evs: make([]*events.Event, 0, len(evs))}
		for i := range evs {
			ev := &evs[i]
			if err := ev.Validate(); err != nil {
				p.reject("event", m.Seq, err)
				continue
			}
			if err := events.CheckPlacement(tenant, class, ev); err != nil {
				p.reject("event", m.Seq, err)
				continue
			}
			dup, err := p.seenBefore(b, pending, eventKey{tenant, ev.ID})
			if err != nil {
				return nil, err
			}
			if dup {
				b.st.duplicates++
				continue
			}
			b.ids[eventKey{tenant, ev.ID}] = struct{}{}
			b.seen = append(b.seen, SeenID{Tenant: tenant, ID: ev.ID, Seq: m.Seq})
			f.evs = append(f.evs, ev)
		}
		b.work = append(b.work, f)
	}
	if b.last == 0 {
		return nil, nil
	}
	return b, nil
}

// seenBefore reports whether an event was folded before: by b itself, by a
// batch still waiting for its commit, or by the store.
func (p *Projector) seenBefore(b *batch, pending []*batch, k eventKey) (bool, error) {
	if _, dup := b.ids[k]; dup {
		return true, nil
	}
	for _, pb := range pending {
		if _, dup := pb.ids[k]; dup {
			return true, nil
		}
	}
	dup, err := p.store.Seen(k.tenant, k.id)
	if err != nil {
		return false, fmt.Errorf("dedup %s/%s: %w", k.tenant, k.id, err)
	}
	return dup, nil
}

// commit folds a prepared batch and commits it: the second stage, under the
// write lock. Commits must not overlap, and must come in the order the
// batches were prepared.
func (p *Projector) commit(b *batch) error {
	st := b.st
	p.mu.Lock()
	defer p.mu.Unlock()
	d := NewDeltas()
	// The counter map is kept from one commit to the next, so it does not
	// grow (and rehash) again for every batch.
	if p.counters == nil {
		p.counters = d.Counters
	}
	clear(p.counters)
	d.Counters = p.counters
	dirty := map[string]*Tenant{}
	for _, f := range b.work {
		t, err := p.tenantLocked(f.tenant, true)
		if err != nil {
			return err
		}
		t.Observe(f.meta)
		dirty[f.tenant] = t
		for _, ev := range f.evs {
			st.observe(t, ev)
			Evolve(t, ev, f.meta, d)
		}
	}
	c := &Commit{Deltas: d, Seen: b.seen, Applied: b.last}
	for _, t := range dirty {
		c.Tenants = append(c.Tenants, t)
	}
	if err := p.store.Write(c); err != nil {
		// The cached states already hold this batch: forget them, so that
		// whoever retries folds from what the store has.
		p.tenants = map[string]*Tenant{}
		return fmt.Errorf("commit through sequence %d: %w", b.last, err)
	}
	p.applied.Store(b.last)
	p.stats.add(&st)
	if len(p.tenants) > p.opts.MaxTenants {
		for name := range p.tenants { // every state is in the store; drop any
			delete(p.tenants, name)
			if len(p.tenants) <= p.opts.MaxTenants/2 {
				break
			}
		}
	}
	p.waitMu.Lock()
	close(p.advanced)
	p.advanced = make(chan struct{})
	p.waitMu.Unlock()
	return nil
}

func (p *Projector) reject(what string, seq uint64, err error) {
	p.rejected.Add(1)
	p.log.Warn("refused while folding", "what", what, "seq", seq, "err", err)
}

// tenantLocked returns a tenant's state; with cache set (write lock held) it
// is kept in memory.
func (p *Projector) tenantLocked(name string, cache bool) (*Tenant, error) {
	if t, ok := p.tenants[name]; ok {
		return t, nil
	}
	t, err := p.store.LoadTenant(name)
	if err != nil {
		return nil, err
	}
	if cache {
		p.tenants[name] = t
	}
	return t, nil
}

// View calls fn with a tenant's state and the counters, consistent with each
// other at one applied sequence. fn must not modify the state or keep it.
func (p *Projector) View(tenant string, fn func(t *Tenant, c Counters, applied uint64) error) error {
	return p.ViewAll(tenant, func(t *Tenant, r Reader, applied uint64) error { return fn(t, r, applied) })
}

// Reader is what ViewAll lends: the counters and the per-event and
// per-reservation lookups, all at one applied sequence.
type Reader interface {
	Counters
	Seen(tenant, id string) (bool, error)
	Settled(tenant, id string) (ClosedReservation, bool, error)
}

// ViewAll is View with the lookups a decider needs besides the counters.
// fn runs under the projector's read lock, so it must be short and must not
// call the projector.
//
// A counter that cannot be read is not zero: ViewAll then returns an
// unavailable error (after fn, whatever fn returned), so that no answer is
// given from counters the store could not read.
func (p *Projector) ViewAll(tenant string, fn func(t *Tenant, r Reader, applied uint64) error) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	t, err := p.tenantLocked(tenant, false)
	if err != nil {
		return err
	}
	r := checkedReader{Store: p.store}
	err = fn(t, &r, p.applied.Load())
	if r.err != nil {
		return &events.Error{Code: events.CodeUnavailable, Message: "read the projection's counters: " + r.err.Error(), Suggestion: "retry shortly; if it persists, check the disk and rebuild the projection"}
	}
	return err
}

// checkedReader is the store as a Reader that keeps the first counter read
// error instead of counting the counter as zero.
type checkedReader struct {
	*Store
	err error
}

func (r *checkedReader) Sum(k CounterKey, from, to int64) (used, reserved, oldest int64) {
	used, reserved, oldest, err := r.SumErr(k, from, to)
	if err != nil && r.err == nil {
		r.err = err
	}
	return used, reserved, oldest
}

// Totals returns a tenant's all-time totals per metric.
func (p *Projector) Totals(tenant string) (map[events.Metric]int64, uint64, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	tot, err := p.store.Totals(tenant)
	return tot, p.applied.Load(), err
}

// ParseSubject splits ledger.ev.<partition>.<tenant>.<class>; ok is false
// for a subject whose messages the fold refuses whole (see
// events.ParseSubject).
func ParseSubject(s string) (tenant, class string, ok bool) {
	tenant, class, err := events.ParseSubject(s)
	return tenant, class, err == nil
}
