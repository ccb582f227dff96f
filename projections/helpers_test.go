package projections

import (
	"fmt"
	"testing"
	"time"

	"github.com/ledgerworks/ledger/events"
)

// mapCounters is the in-memory Counters of the tests: a plain map holding
// every counter delta ever added, summed the obvious way.
type mapCounters map[CounterKey]int64

func (m mapCounters) add(d *Deltas) {
	for k, n := range d.Counters {
		m[k] += n
	}
}

// sameLimit reports whether a and b name the same limit of the same split
// and epoch (buckets and the reserved flag aside).
func sameLimit(a, b CounterKey) bool {
	return a.Tenant == b.Tenant && a.Quota == b.Quota && a.Epoch == b.Epoch && a.Split == b.Split && a.Limit == b.Limit
}

// Sum implements Counters with the contract Store.Sum documents: usage and
// reservations over buckets from..to, and the oldest bucket holding either.
func (m mapCounters) Sum(k CounterKey, from, to int64) (used, reserved, oldest int64) {
	for ck, n := range m {
		if n == 0 || !sameLimit(ck, k) || ck.Bucket < from || ck.Bucket > to {
			continue
		}
		if ck.Reserved {
			reserved += n
		} else {
			used += n
		}
		if oldest == 0 || ck.Bucket < oldest {
			oldest = ck.Bucket
		}
	}
	return used, reserved, oldest
}

// at parses an RFC 3339 time with an explicit offset, so that expected
// instants do not depend on the zone database the code under test uses.
func at(tb testing.TB, s string) time.Time {
	tb.Helper()
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		tb.Fatalf("bad time %q: %v", s, err)
	}
	return t
}

func slidingW(seconds int64) events.Window {
	return events.Window{Kind: events.Sliding, Seconds: seconds}
}

func calendarW(unit, tz string) events.Window {
	return events.Window{Kind: events.Calendar, Unit: unit, TZ: tz}
}

func rollingW(seconds int64) events.Window {
	return events.Window{Kind: events.Rolling, Seconds: seconds}
}

func limitOf(m events.Metric, max int64, w events.Window) events.Limit {
	return events.Limit{Metric: m, Max: max, Window: w}
}

// dims builds dimensions from name, value pairs.
func dims(kv ...string) events.Dimensions {
	if len(kv)%2 != 0 {
		panic("dims: odd number of arguments")
	}
	d := events.Dimensions{}
	for i := 0; i < len(kv); i += 2 {
		d[kv[i]] = kv[i+1]
	}
	return d
}

// fixture folds events into one tenant with a map for counters, the way the
// projector does but one event at a time.
type fixture struct {
	tb     testing.TB
	ten    *Tenant
	c      mapCounters
	totals map[TotalKey]int64
	seq    uint64
	n      int
}

func newFixture(tb testing.TB) *fixture {
	return &fixture{tb: tb, ten: NewTenant("acme"), c: mapCounters{}, totals: map[TotalKey]int64{}}
}

// event builds a valid event of the fixture's tenant with a fresh ID.
func (f *fixture) event(when time.Time, d events.Dimensions, groups []string, p events.Payload) events.Event {
	f.tb.Helper()
	f.n++
	ev := events.Event{ID: fmt.Sprintf("ev-%d", f.n), Type: p.EventType(), Tenant: f.ten.Name, Dims: d, Groups: groups, Time: when, Payload: p}
	if err := ev.Validate(); err != nil {
		f.tb.Fatalf("test event %s is invalid: %v", ev.Type, err)
	}
	return ev
}

// fold applies one event and returns the deltas it caused.
func (f *fixture) fold(ev events.Event) *Deltas {
	f.tb.Helper()
	f.seq++
	d := NewDeltas()
	Evolve(f.ten, &ev, Meta{Seq: f.seq, Decision: events.ClassOf(ev.Type) == events.ClassDecision}, d)
	f.c.add(d)
	for k, n := range d.Totals {
		f.totals[k] += n
	}
	return d
}

// apply builds and folds one event.
func (f *fixture) apply(when time.Time, d events.Dimensions, groups []string, p events.Payload) *Deltas {
	f.tb.Helper()
	return f.fold(f.event(when, d, groups, p))
}

func (f *fixture) setQuota(when time.Time, q events.Quota) {
	f.tb.Helper()
	f.apply(when, nil, nil, &events.QuotaSet{Quota: q})
}

func (f *fixture) use(when time.Time, d events.Dimensions, groups []string, a events.Amounts) {
	f.tb.Helper()
	f.apply(when, d, groups, &events.UsageRecorded{Amounts: a})
}

func (f *fixture) statuses(now time.Time, d events.Dimensions, groups []string, req events.Amounts) []LimitStatus {
	return Statuses(f.ten, f.c, Call{Dims: d, Groups: groups, Request: req}, now)
}

// status returns the status of limit i of quota for a call, failing the
// test when the quota does not apply.
func (f *fixture) status(now time.Time, d events.Dimensions, groups []string, req events.Amounts, quota string, i int) LimitStatus {
	f.tb.Helper()
	n := 0
	for _, st := range f.statuses(now, d, groups, req) {
		if st.Quota != quota {
			continue
		}
		if n == i {
			return st
		}
		n++
	}
	f.tb.Fatalf("no status for limit %d of quota %s (dims %v, groups %v)", i, quota, d, groups)
	return LimitStatus{}
}

// used is the usage of limit i of quota a call would see at now.
func (f *fixture) used(now time.Time, d events.Dimensions, groups []string, quota string, i int) int64 {
	f.tb.Helper()
	return f.status(now, d, groups, events.Amounts{}, quota, i).Used
}
