package projections

import (
	"time"

	"github.com/ledgerworks/ledger/events"
)

// Counters reads windowed counters. Store implements it over Pebble; tests
// use a map.
type Counters interface {
	// Sum adds the usage and reserved counters of k's limit and split over
	// buckets from..to (k.Bucket and k.Reserved are ignored) and returns the
	// oldest bucket holding usage or reservations (0 when none).
	Sum(k CounterKey, from, to int64) (used, reserved, oldest int64)
}

// Call is what a check asks about: a call's dimensions and what it would use.
type Call struct {
	Dims    events.Dimensions
	Groups  []string
	Request events.Amounts
	// Permit: the call would take a concurrency permit (a reservation).
	Permit bool
	// Workflows: the call would begin this many workflows.
	Workflows int64
}

// LimitStatus is the state of one limit of one matching quota for a call.
type LimitStatus struct {
	Quota       string
	Split       string
	Limit       events.Limit
	Soft        bool
	Used        int64
	Reserved    int64
	Requested   int64 // what the call would add
	Remaining   int64 // max - used - reserved, at least 0
	PercentUsed float64
	Warning     bool // used+reserved reached the quota's warning threshold
	Exceeded    bool // used+reserved+requested passes max
	WindowStart time.Time
	ResetsAt    time.Time
}

// Statuses returns the status of every limit of every quota matching call, in
// quota ID then limit order.
func Statuses(t *Tenant, c Counters, call Call, now time.Time) []LimitStatus {
	var out []LimitStatus
	if len(t.order) > 0 {
		// Room for the usual call's limits in one allocation: growing the
		// slice one status at a time cost a check two more.
		out = make([]LimitStatus, 0, 4)
	}
	return AppendStatuses(out, t, c, call, now)
}

// AppendStatuses is Statuses appending to dst: a check answered for every
// call a metered service makes passes a buffer of its own instead of
// allocating one.
func AppendStatuses(dst []LimitStatus, t *Tenant, c Counters, call Call, now time.Time) []LimitStatus {
	out := dst
	for _, id := range t.QuotaIDs() {
		qs := t.Quotas[id]
		if !qs.Quota.Matches(call.Dims, call.Groups) {
			continue
		}
		out = appendStatuses(out, t, c, qs, qs.Quota.SplitKey(call.Dims), &call, now)
	}
	return out
}

// QuotaStatuses returns the status of every limit of quota id for one split
// value (see events.Quota.SplitKey), as a check asking for nothing would
// see it; nil when the tenant has no such quota. Dashboards show each
// split of a quota with it.
func QuotaStatuses(t *Tenant, c Counters, id, split string, now time.Time) []LimitStatus {
	qs, ok := t.Quotas[id]
	if !ok {
		return nil
	}
	return appendStatuses(nil, t, c, qs, split, &Call{}, now)
}

// appendStatuses appends the status of every limit of quota qs for split.
func appendStatuses(out []LimitStatus, t *Tenant, c Counters, qs *QuotaState, split string, call *Call, now time.Time) []LimitStatus {
	q := &qs.Quota
	op := call.Dims[events.DimOperation]
	for i, l := range q.Limits {
		k := CounterKey{Tenant: t.Name, Quota: q.ID, Epoch: t.epoch(q.ID, split), Split: split, Limit: qs.LimitKey(i)}
		st := LimitStatus{Quota: q.ID, Split: split, Limit: l, Soft: q.IsSoft(), Requested: Amount(q, l.Metric, &call.Request, op)}
		switch l.Metric {
		case events.MetricConcurrent:
			if call.Permit {
				st.Requested = 1
			}
			st.Used, st.Reserved, _ = c.Sum(k, 0, 0)
			st.ResetsAt = t.nextPermit(k, now)
			fill(&st, q, l)
			out = append(out, st)
			continue
		case events.MetricWorkflows:
			st.Requested = call.Workflows
		}
		var span Span
		open := true
		if l.Window.Kind == events.Rolling {
			span, open = rollingSpan(l.Window, t.RollingStart(qs, i, split), now)
		} else {
			span = SpanAt(l.Window, now)
		}
		st.WindowStart, st.ResetsAt = span.Start, span.ResetsAt
		if open {
			var oldest int64
			st.Used, st.Reserved, oldest = c.Sum(k, span.From, span.To)
			if l.Window.Kind == events.Sliding && oldest != 0 {
				st.ResetsAt = time.Unix(oldest+int64(l.Window.Length()/time.Second), 0).UTC()
			}
		}
		fill(&st, q, l)
		out = append(out, st)
	}
	return out
}

func fill(st *LimitStatus, q *events.Quota, l events.Limit) {
	held := st.Used + st.Reserved
	st.Remaining = max(l.Max-held, 0)
	if l.Max > 0 {
		st.PercentUsed = float64(held) * 100 / float64(l.Max)
	} else if held > 0 {
		st.PercentUsed = 100
	}
	warn := q.WarnPercent
	if warn == 0 {
		warn = 80
	}
	st.Warning = held*100 >= l.Max*warn && held > 0
	if st.Requested > 0 {
		st.Exceeded = held+st.Requested > l.Max
	} else {
		// Nothing asked for: is there room for anything at all?
		st.Exceeded = held >= l.Max
	}
}

// nextPermit is when a permit of counter k comes back at the latest: the
// earliest expiry of the open reservations holding one (now when none).
func (t *Tenant) nextPermit(k CounterKey, now time.Time) time.Time {
	var next time.Time
	for _, r := range t.Reservations {
		for _, h := range r.Holds {
			hk := h.Key
			hk.Reserved, hk.Bucket = false, 0
			if hk == k && (next.IsZero() || r.ExpiresAt.Before(next)) {
				next = r.ExpiresAt
			}
		}
	}
	if next.IsZero() {
		return now
	}
	return next
}
