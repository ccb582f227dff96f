package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/metrics"
	"github.com/ledgerworks/ledger/projections"
)

// decider runs Decide for one tenant at a time and appends the decisions,
// fenced on the tenant's decision subject.
//
// Commands for the same tenant queue up; a worker takes all that are queued
// (up to maxGroup), decides them in order on a copy of the tenant's state
// (folding each decision onto the copy before deciding the next), and
// appends them as one stream message with the expected last sequence of the
// tenant's decision subject. The stream refuses the append if any other
// decision on the tenant reached it first (another instance, or a decision
// this projection has not folded yet); the worker then catches up and
// decides again. So the fence is the stream itself, and grouping makes a hot
// tenant cost one fenced append per group, not per request.
type decider struct {
	app    *Appender
	proj   *projections.Projector
	stream jetstream.Stream
	now    func() time.Time
	wait   time.Duration
	log    *slog.Logger
	// metrics count the sweep's expirations (nil: not counted).
	metrics *metrics.Metrics

	mu      sync.Mutex
	tenants map[string]*tenantQueue
}

const maxGroup = 256

type tenantQueue struct {
	queue   []*pendingCommand
	running bool
	// appended are this decider's appends for the tenant that the projection
	// had not folded when last looked at, oldest first. Only the worker
	// touches them.
	appended []appended
}

// folded reports whether the projection, at applied, holds all the queue's
// appends. Only the worker, or anyone while no worker runs, may ask.
func (q *tenantQueue) folded(applied uint64) bool {
	return len(q.appended) == 0 || q.appended[len(q.appended)-1].seq <= applied
}

// appended is one fenced append of decisions.
type appended struct {
	seq uint64
	evs []events.Event
}

type pendingCommand struct {
	cmd  Command
	done chan decided
}

type decided struct {
	Decision
	seq uint64
	err error
}

func newDecider(app *Appender, proj *projections.Projector, stream jetstream.Stream, now func() time.Time, wait time.Duration, log *slog.Logger) *decider {
	return &decider{app: app, proj: proj, stream: stream, now: now, wait: wait, log: log, tenants: map[string]*tenantQueue{}}
}

// Submit decides cmd for tenant and returns once the decision is durable in
// the stream (or refused).
func (d *decider) Submit(ctx context.Context, tenant string, cmd Command) (Decision, uint64, error) {
	return d.await(ctx, d.enqueue(tenant, cmd))
}

// enqueue queues cmd for tenant's worker; await its decision. Commands
// enqueued one after the other for a tenant are decided in that order.
func (d *decider) enqueue(tenant string, cmd Command) *pendingCommand {
	return d.enqueueAll(tenant, []Command{cmd})[0]
}

// enqueueAll queues cmds for tenant's worker at once, so that the worker
// takes them in one group (up to maxGroup) with one fenced append.
func (d *decider) enqueueAll(tenant string, cmds []Command) []*pendingCommand {
	ps := make([]*pendingCommand, len(cmds))
	for i, cmd := range cmds {
		ps[i] = &pendingCommand{cmd: cmd, done: make(chan decided, 1)}
	}
	d.mu.Lock()
	q := d.tenants[tenant]
	if q == nil {
		q = &tenantQueue{}
		d.tenants[tenant] = q
	}
	q.queue = append(q.queue, ps...)
	if !q.running {
		q.running = true
		go d.work(tenant, q)
	}
	d.mu.Unlock()
	return ps
}

// await returns the decision of an enqueued command once it is durable in the
// stream (or refused), or unavailable when ctx ends first.
func (d *decider) await(ctx context.Context, p *pendingCommand) (Decision, uint64, error) {
	select {
	case r := <-p.done:
		return r.Decision, r.seq, r.err
	case <-ctx.Done():
		return Decision{}, 0, &events.Error{Code: events.CodeUnavailable, Message: "the decision did not complete in time; it may still be appended", Suggestion: "retry with the same reservation, workflow or event id: the retry is answered, not applied twice"}
	}
}

func (d *decider) work(tenant string, q *tenantQueue) {
	for {
		d.mu.Lock()
		n := min(len(q.queue), maxGroup)
		if n == 0 {
			q.running = false
			if q.folded(d.proj.Applied()) {
				delete(d.tenants, tenant) // nothing to remember: the projection has it all
			}
			d.mu.Unlock()
			return
		}
		group := append([]*pendingCommand(nil), q.queue[:n]...)
		q.queue = q.queue[n:]
		d.mu.Unlock()

		d.decideGroup(tenant, q, group)
	}
}

const maxFenceRetries = 20

// decideGroup decides and appends a group of commands and answers each.
//
// It decides on the projection's state with the decider's own appends that
// the projection has not folded yet folded on top, so a busy tenant's next
// group never waits for the projector. That state is exact: each of those
// appends was fenced on the one before it, so nobody else decided for the
// tenant in between (and the stream refuses this group's append otherwise).
func (d *decider) decideGroup(tenant string, q *tenantQueue, group []*pendingCommand) {
	ctx, cancel := context.WithTimeout(context.Background(), d.wait)
	defer cancel()
	answer := func(results []decided) {
		for i, p := range group {
			p.done <- results[i]
		}
	}
	failAll := func(err error) {
		rs := make([]decided, len(group))
		for i := range rs {
			rs[i].err = err
		}
		answer(rs)
	}
	var catchUp uint64 // after a conflict: the sequence to fold up to first
	for attempt := 0; ; attempt++ {
		if err := d.proj.WaitApplied(ctx, catchUp); err != nil {
			failAll(&events.Error{Code: events.CodeUnavailable, Message: "the projection is behind the stream: " + err.Error(), Suggestion: "retry shortly"})
			return
		}
		var (
			results []decided
			evs     []events.Event
			fence   uint64
		)
		err := d.proj.ViewAll(tenant, func(t *projections.Tenant, r projections.Reader, applied uint64) error {
			st := t.Clone()
			view := newOverlay(r, tenant)
			for len(q.appended) > 0 && q.appended[0].seq <= applied {
				q.appended = q.appended[1:]
			}
			for _, a := range q.appended {
				m := projections.Meta{Seq: a.seq, Decision: true}
				st.Observe(m)
				view.fold(st, a.evs, m)
			}
			fence = st.LastDecision
			now := d.now()
			results = make([]decided, len(group))
			for i, p := range group {
				dec, err := Decide(st, view, p.cmd, now, nuid.Next)
				results[i] = decided{Decision: dec, err: err}
				if err != nil {
					continue
				}
				view.fold(st, dec.Events, projections.Meta{})
				evs = append(evs, dec.Events...)
			}
			return view.err
		})
		if err != nil {
			failAll(err)
			return
		}
		if len(evs) == 0 {
			answer(results)
			return
		}
		seq, err := d.app.Append(ctx, tenant, events.ClassDecision, evs, &Fence{LastSeq: fence})
		if errors.Is(err, events.ErrConflict) && attempt < maxFenceRetries {
			// Another decision reached the tenant's subject first: fold up
			// to it and decide again.
			last, lerr := d.lastDecisionSeq(ctx, tenant)
			if lerr != nil {
				failAll(lerr)
				return
			}
			catchUp = last
			continue
		}
		if err != nil {
			// The append may have landed even so: the next group's fence
			// then fails and it catches up.
			for i := range results {
				if results[i].err == nil && len(results[i].Events) > 0 {
					results[i].err = err
				}
			}
			answer(results)
			return
		}
		q.appended = append(q.appended, appended{seq: seq, evs: evs})
		for i := range results {
			if len(results[i].Events) > 0 {
				results[i].seq = seq
			}
		}
		answer(results)
		return
	}
}

// forgetFolded drops the queues of idle tenants whose appends the projection
// has folded since their worker stopped, so that tenants that went quiet do
// not hold their last decisions forever.
func (d *decider) forgetFolded() {
	applied := d.proj.Applied()
	d.mu.Lock()
	defer d.mu.Unlock()
	for tenant, q := range d.tenants {
		if !q.running && q.folded(applied) {
			delete(d.tenants, tenant)
		}
	}
}

func (d *decider) lastDecisionSeq(ctx context.Context, tenant string) (uint64, error) {
	m, err := d.stream.GetLastMsgForSubject(ctx, events.Subject(tenant, events.ClassDecision))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, &events.Error{Code: events.CodeUnavailable, Message: fmt.Sprintf("read the last decision of %s: %v", tenant, err)}
	}
	return m.Sequence, nil
}

// sweepExpiries appends an expiry for every reservation past its TTL in the
// partitions owns says this process owns, until ctx is done. Were two
// processes to sweep one partition (a deposed owner that has not noticed),
// the fence makes one of them win and the other find nothing left to
// expire.
func (d *decider) sweepExpiries(ctx context.Context, every time.Duration, owns func(partition int) bool) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d.forgetFolded()
		due, err := d.proj.DueExpiries(d.now(), 1024)
		if err != nil {
			d.log.Warn("expiry sweep", "err", err)
			continue
		}
		var wg sync.WaitGroup
		for _, k := range due {
			if !owns(events.Partition(k.Tenant)) {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				dec, _, err := d.Submit(ctx, k.Tenant, Expire{Reservation: k.Reservation})
				if ctx.Err() != nil {
					return
				}
				outcome := dec.Outcome
				if outcome == "" {
					outcome = "none" // nothing left to expire: settled, or expired by another instance
				}
				d.metrics.Decision("expire", decisionResult(outcome, err), time.Since(start))
				if err != nil {
					d.log.Warn("expire reservation", "tenant", k.Tenant, "reservation", k.Reservation, "err", err)
				}
			}()
		}
		wg.Wait()
	}
}

// overlay is the projection seen through decisions it has not folded yet:
// their counter deltas, event ids and settled reservations on top of what
// the store holds.
type overlay struct {
	base   projections.Reader
	tenant string
	d      *projections.Deltas
	seen   map[string]bool
	err    error // the first failed lookup: the decisions made on it are void
}

func newOverlay(base projections.Reader, tenant string) *overlay {
	return &overlay{base: base, tenant: tenant, d: projections.NewDeltas(), seen: map[string]bool{}}
}

// fold evolves st by evs and keeps their effects.
func (o *overlay) fold(st *projections.Tenant, evs []events.Event, m projections.Meta) {
	for j := range evs {
		projections.Evolve(st, &evs[j], m, o.d)
		o.seen[evs[j].ID] = true
	}
}

func (o *overlay) Sum(k projections.CounterKey, from, to int64) (used, reserved, oldest int64) {
	used, reserved, oldest = o.base.Sum(k, from, to)
	for dk, n := range o.d.Counters {
		b, r := dk.Bucket, dk.Reserved
		dk.Bucket, dk.Reserved = k.Bucket, k.Reserved
		if dk != k || b < from || b > to {
			continue
		}
		if r {
			reserved += n
		} else {
			used += n
		}
		if oldest == 0 || b < oldest {
			oldest = b
		}
	}
	return used, reserved, oldest
}

func (o *overlay) Seen(id string) bool {
	if o.seen[id] {
		return true
	}
	seen, err := o.base.Seen(o.tenant, id)
	o.fail(err)
	return seen
}

func (o *overlay) Settled(id string) (projections.ClosedReservation, bool) {
	if c, ok := o.d.Settled[projections.SettledKey{Tenant: o.tenant, Reservation: id}]; ok {
		return c, true
	}
	c, ok, err := o.base.Settled(o.tenant, id)
	o.fail(err)
	return c, ok
}

func (o *overlay) fail(err error) {
	if err != nil && o.err == nil {
		o.err = &events.Error{Code: events.CodeUnavailable, Message: "read the projection: " + err.Error(), Suggestion: "retry shortly"}
	}
}
