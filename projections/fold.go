package projections

import (
	"math"
	"slices"
	"time"

	"github.com/ledgerworks/ledger/events"
)

// CounterKey names one windowed counter: a limit of a quota, for one split,
// in one bucket. Reserved counters hold reservations' estimates; the others
// count usage.
type CounterKey struct {
	Tenant   string `msgpack:"t"`
	Quota    string `msgpack:"q"`
	Epoch    uint32 `msgpack:"e,omitempty"`
	Split    string `msgpack:"s,omitempty"`
	Limit    string `msgpack:"l"`
	Bucket   int64  `msgpack:"b"`
	Reserved bool   `msgpack:"r,omitempty"`
}

// TotalKey names a tenant's all-time total of one metric.
type TotalKey struct {
	Tenant string
	Metric events.Metric
}

// Deltas are the counter changes of one or more events, aggregated so that a
// batch of events costs one write per touched counter.
type Deltas struct {
	Counters map[CounterKey]int64
	Totals   map[TotalKey]int64
	// Expiries adds (true) or removes (false) entries of the expiry index.
	Expiries map[ExpiryKey]bool
	// Settled are the reservations settled by the fold.
	Settled map[SettledKey]ClosedReservation
	// Forget is, per tenant, the settlement time (Unix ns) before which
	// settled reservations are forgotten.
	Forget map[string]int64
}

// NewDeltas returns empty deltas.
func NewDeltas() *Deltas {
	return &Deltas{Counters: map[CounterKey]int64{}, Totals: map[TotalKey]int64{}}
}

func (d *Deltas) add(k CounterKey, n int64) {
	if n != 0 {
		d.Counters[k] += n
	}
}

func (d *Deltas) addTotals(tenant string, a events.Amounts, sign int64) {
	put := func(m events.Metric, n int64) {
		if n != 0 {
			d.Totals[TotalKey{tenant, m}] += sign * n
		}
	}
	put(events.MetricTokens, a.TotalTokens())
	put(events.MetricInputTokens, a.InputTokens)
	put(events.MetricOutputTokens, a.OutputTokens)
	put(events.MetricRequests, a.Requests)
	put(events.MetricCost, a.Cost)
	for name, n := range a.Actions {
		put(events.ActionMetric(name), n)
	}
}

// Meta is the stream metadata of the message an event came in.
type Meta struct {
	Seq      uint64 // stream sequence of the message
	Decision bool   // the message is on the tenant's decision subject
}

// Evolve applies one event to its tenant's state and adds the counter changes
// it causes to d. It is deterministic: it reads only the event, its stream
// metadata and the state, never the clock, and it ignores event types it does
// not know. Deduplication by event ID happens before Evolve.
func Evolve(t *Tenant, ev *events.Event, m Meta, d *Deltas) {
	switch p := ev.Payload.(type) {
	case *events.UsageRecorded:
		d.addTotals(t.Name, p.Amounts, 1)
		t.count(ev, p.Amounts, 1, d)
	case *events.UsageCorrected:
		d.addTotals(t.Name, p.Delta, 1)
		t.count(ev, p.Delta, 1, d)
	case *events.ReservationCreated:
		t.reserve(ev, p, d)
	case *events.ReservationReconciled:
		t.settle(p.Reservation, &p.Actual, OutcomeReconciled, ev.Time, d)
	case *events.ReservationReleased:
		t.settle(p.Reservation, nil, OutcomeReleased, ev.Time, d)
	case *events.ReservationExpired:
		t.settle(p.Reservation, nil, OutcomeExpired, ev.Time, d)
	case *events.RetrySignalled:
		if t.Retries == nil {
			t.Retries = map[string]Retry{}
		}
		t.Retries[RetryKey(ev.Dims)] = Retry{Key: ev.Dims, Signal: *p, At: ev.Time}
		t.dropPassedRetries(ev.Time)
	case *events.RetryCleared:
		delete(t.Retries, RetryKey(ev.Dims))
	case *events.WorkflowBegun:
		if t.Workflows == nil {
			t.Workflows = map[string]*Workflow{}
		}
		t.Workflows[p.Workflow] = &Workflow{ID: p.Workflow, Begun: ev.Time, Dims: ev.Dims, Groups: ev.Groups}
		t.countMetric(ev, events.MetricWorkflows, 1, d)
	case *events.WorkflowStepped:
		if w := t.Workflows[p.Workflow]; w != nil {
			w.Steps++
		}
	case *events.WorkflowEnded:
		delete(t.Workflows, p.Workflow)
	case *events.QuotaSet:
		if t.Quotas == nil {
			t.Quotas = map[string]*QuotaState{}
		}
		since := ev.Time
		if old, ok := t.Quotas[p.Quota.ID]; ok {
			since = old.Since
		}
		t.Quotas[p.Quota.ID] = newQuotaState(p.Quota, since)
		t.quotasChanged()
	case *events.QuotaDeleted:
		if _, ok := t.Quotas[p.Quota]; ok {
			delete(t.Quotas, p.Quota)
			t.bumpEpoch(p.Quota)       // a quota created again later starts afresh
			for k := range t.Rolling { // rolling windows too: they open at the next first use
				if rollingOf(k, p.Quota, "") {
					delete(t.Rolling, k)
				}
			}
			t.quotasChanged()
		}
	case *events.CounterReset:
		if p.Split == "" {
			t.bumpEpoch(p.Quota)
		} else {
			t.bumpEpoch(p.Quota + "\x00" + p.Split)
		}
		for k := range t.Rolling {
			if rollingOf(k, p.Quota, p.Split) {
				delete(t.Rolling, k)
			}
		}
		t.moveHolds(p.Quota, p.Split, d)
	case *events.PlanSet:
		if t.Plans == nil {
			t.Plans = map[string]events.PlanSet{}
		}
		t.Plans[p.Project] = *p
	}
}

// moveHolds carries the holds of open reservations on a reset quota (or one
// split of it) over to the new epoch's counters: a reset forgets usage, not
// calls in flight, which still hold their estimate until they are settled.
func (t *Tenant) moveHolds(quota, split string, d *Deltas) {
	for id, r := range t.Reservations {
		var moved *Reservation
		for i, h := range r.Holds {
			if h.Key.Quota != quota || (split != "" && h.Key.Split != split) {
				continue
			}
			k := h.Key
			k.Epoch = t.epoch(quota, k.Split)
			if k == h.Key {
				continue
			}
			if moved == nil { // reservations are shared with clones: copy, never modify
				c := *r
				c.Holds = slices.Clone(r.Holds)
				moved = &c
			}
			d.add(h.Key, -h.Amount)
			d.add(k, h.Amount)
			moved.Holds[i].Key = k
		}
		if moved != nil {
			t.Reservations[id] = moved
		}
	}
}

// Amount is what a call of amounts a costs against one limit of q: tokens are
// multiplied by the quota's cost for the call's operation.
func Amount(q *events.Quota, m events.Metric, a *events.Amounts, operation string) int64 {
	n := a.Of(m)
	if m == events.MetricTokens && n != 0 {
		n = multiplyCapped(n, q.Multiplier(operation))
	}
	return n
}

// maxCounted caps one amount times its cost multiplier (both bounded by
// validation, but their product is not), so that the product cannot wrap
// around to a negative count.
const maxCounted = math.MaxInt64 / 4

func multiplyCapped(n, m int64) int64 {
	if m == 0 {
		return 0
	}
	if n > maxCounted/m {
		return maxCounted
	}
	if n < -maxCounted/m {
		return -maxCounted
	}
	return n * m
}

// count adds amounts to every matching quota's counters at the event's time.
func (t *Tenant) count(ev *events.Event, a events.Amounts, sign int64, d *Deltas) {
	op := ev.Dims[events.DimOperation]
	for _, id := range t.QuotaIDs() {
		qs := t.Quotas[id]
		if !qs.Quota.Matches(ev.Dims, ev.Groups) {
			continue
		}
		split := qs.Quota.SplitKey(ev.Dims)
		for i, l := range qs.Quota.Limits {
			n := Amount(&qs.Quota, l.Metric, &a, op)
			if n == 0 {
				continue
			}
			d.add(t.counterKey(qs, i, split, ev.Time), sign*n)
		}
	}
}

// countMetric adds n of one metric to every matching quota limiting it.
func (t *Tenant) countMetric(ev *events.Event, m events.Metric, n int64, d *Deltas) {
	for _, id := range t.QuotaIDs() {
		qs := t.Quotas[id]
		if !qs.Quota.Matches(ev.Dims, ev.Groups) {
			continue
		}
		split := qs.Quota.SplitKey(ev.Dims)
		for i, l := range qs.Quota.Limits {
			if l.Metric != m {
				continue
			}
			d.add(t.counterKey(qs, i, split, ev.Time), n)
		}
	}
}

// counterKey returns the usage counter that an event at time at counts in,
// starting a rolling window if none is open. A late event counts in the
// rolling window that held its time; when no known window did (it is older
// than the first one, or fell in a gap between two), it counts in the
// earliest known window that had not ended by then: usage is never dropped.
func (t *Tenant) counterKey(qs *QuotaState, i int, split string, at time.Time) CounterKey {
	q := &qs.Quota
	l := q.Limits[i]
	k := CounterKey{Tenant: t.Name, Quota: q.ID, Epoch: t.epoch(q.ID, split), Split: split, Limit: qs.LimitKey(i)}
	if l.Metric == events.MetricConcurrent {
		return k // permits have no window: one counter, bucket 0
	}
	if l.Window.Kind != events.Rolling {
		k.Bucket = Bucket(l.Window, at)
		return k
	}
	rk := q.ID + "\x00" + split + "\x00" + k.Limit
	rw := t.Rolling[rk]
	length := int64(l.Window.Length() / time.Second)
	sec := at.Unix()
	switch {
	case rw.Start != 0 && sec >= rw.Start && sec < rw.Start+length:
		k.Bucket = rw.Start
	case rw.Start == 0 || sec >= rw.Start+length:
		if t.Rolling == nil {
			t.Rolling = map[string]RollingWindow{}
		}
		t.Rolling[rk] = RollingWindow{Start: sec, Prev: rw.Start}
		k.Bucket = sec
	case rw.Prev != 0 && sec < rw.Prev+length:
		k.Bucket = rw.Prev
	default:
		k.Bucket = rw.Start
	}
	return k
}

// RollingStart returns the start of the rolling window of limit i of qs for
// a split (0 when none was opened).
func (t *Tenant) RollingStart(qs *QuotaState, i int, split string) int64 {
	return t.Rolling[qs.Quota.ID+"\x00"+split+"\x00"+qs.LimitKey(i)].Start
}

func rollingOf(key, quota, split string) bool {
	if len(key) <= len(quota) || key[:len(quota)] != quota || key[len(quota)] != 0 {
		return false
	}
	if split == "" {
		return true
	}
	rest := key[len(quota)+1:]
	return len(rest) > len(split) && rest[:len(split)] == split && rest[len(split)] == 0
}

func (t *Tenant) reserve(ev *events.Event, p *events.ReservationCreated, d *Deltas) {
	if _, dup := t.Reservations[p.Reservation]; dup {
		return
	}
	r := &Reservation{ID: p.Reservation, Time: ev.Time, ExpiresAt: p.ExpiresAt, Dims: ev.Dims, Groups: ev.Groups, Estimate: p.Estimate}
	op := ev.Dims[events.DimOperation]
	for _, id := range t.QuotaIDs() {
		qs := t.Quotas[id]
		if !qs.Quota.Matches(ev.Dims, ev.Groups) {
			continue
		}
		split := qs.Quota.SplitKey(ev.Dims)
		for i, l := range qs.Quota.Limits {
			k := t.counterKey(qs, i, split, ev.Time)
			k.Reserved = true
			n := Amount(&qs.Quota, l.Metric, &p.Estimate, op)
			if l.Metric == events.MetricConcurrent {
				n = 1 // a reservation holds one permit
			}
			r.Holds = append(r.Holds, Hold{Key: k, Amount: n})
			d.add(k, n)
		}
	}
	if t.Reservations == nil {
		t.Reservations = map[string]*Reservation{}
	}
	t.Reservations[p.Reservation] = r
	d.expiry(ExpiryKey{At: p.ExpiresAt.UnixNano(), Tenant: t.Name, Reservation: p.Reservation}, true)
}

// settle ends a reservation: its holds are given back and, when actual is
// given, the actual usage is counted in the reservation's own windows. An
// unknown or already settled reservation changes nothing.
func (t *Tenant) settle(id string, actual *events.Amounts, outcome string, at time.Time, d *Deltas) {
	r, ok := t.Reservations[id]
	if !ok {
		return
	}
	delete(t.Reservations, id)
	d.expiry(ExpiryKey{At: r.ExpiresAt.UnixNano(), Tenant: t.Name, Reservation: id}, false)
	t.close(r, outcome, at, d)
	op := r.Dims[events.DimOperation]
	for _, h := range r.Holds {
		d.add(h.Key, -h.Amount)
		if actual == nil {
			continue
		}
		k := h.Key
		k.Reserved = false
		m := metricOfLimitKey(k.Limit)
		q := events.Quota{}
		if qs, ok := t.Quotas[k.Quota]; ok {
			q = qs.Quota
		}
		d.add(k, Amount(&q, m, actual, op))
	}
	if actual != nil {
		d.addTotals(t.Name, *actual, 1)
	}
}

func metricOfLimitKey(k string) events.Metric {
	for i := 0; i < len(k); i++ {
		if k[i] == '|' {
			return events.Metric(k[:i])
		}
	}
	return events.Metric(k)
}

func (t *Tenant) dropPassedRetries(now time.Time) {
	for k, r := range t.Retries {
		if !r.Signal.RetryUntil.After(now) {
			delete(t.Retries, k)
		}
	}
}
