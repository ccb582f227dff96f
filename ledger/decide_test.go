package ledger

// Table tests of deciding and folding: every case starts from a tenant state
// built by folding given events with projections.Evolve, decides one command
// with a fixed clock and deterministic ids, checks the events or the typed
// error, then folds the decided events and checks the limit statuses.

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/projections"
)

// ---- an in-memory view and a fold ----

// memView is the map-backed View of the tests: every counter delta ever
// folded, summed the obvious way, every event id folded, and the settled
// reservations not yet forgotten.
type memView struct {
	counters map[projections.CounterKey]int64
	seen     map[string]bool
	settled  map[string]projections.ClosedReservation
}

func (m *memView) Sum(k projections.CounterKey, from, to int64) (used, reserved, oldest int64) {
	for ck, n := range m.counters {
		if n == 0 || ck.Tenant != k.Tenant || ck.Quota != k.Quota || ck.Epoch != k.Epoch || ck.Split != k.Split || ck.Limit != k.Limit || ck.Bucket < from || ck.Bucket > to {
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

func (m *memView) Seen(id string) bool { return m.seen[id] }

func (m *memView) Settled(id string) (projections.ClosedReservation, bool) {
	c, ok := m.settled[id]
	return c, ok
}

func newMemView() *memView {
	return &memView{counters: map[projections.CounterKey]int64{}, seen: map[string]bool{}, settled: map[string]projections.ClosedReservation{}}
}

// world is one tenant's state and counters.
type world struct {
	t   *projections.Tenant
	v   *memView
	seq uint64
}

const tenant = "acme"

func newWorld(tb testing.TB, given ...events.Event) *world {
	tb.Helper()
	w := &world{t: projections.NewTenant(tenant), v: newMemView()}
	for i := range given {
		if given[i].ID == "" {
			given[i].ID = fmt.Sprintf("given-%d", i+1)
		}
		if err := given[i].Validate(); err != nil {
			tb.Fatalf("given event %d (%s): %v", i, given[i].Type, err)
		}
	}
	w.fold(given...)
	return w
}

// fold applies events as the projector does: an id already folded is
// skipped before Evolve, and each event's deltas reach the counters.
func (w *world) fold(evs ...events.Event) {
	for i := range evs {
		ev := evs[i]
		if w.v.seen[ev.ID] {
			continue
		}
		w.seq++
		d := projections.NewDeltas()
		projections.Evolve(w.t, &ev, projections.Meta{Seq: w.seq, Decision: true}, d)
		for k, n := range d.Counters {
			w.v.counters[k] += n
		}
		for id, c := range w.v.settled {
			if c.At.UnixNano() < d.Forget[tenant] {
				delete(w.v.settled, id)
			}
		}
		for k, c := range d.Settled {
			w.v.settled[k.Reservation] = c
		}
		w.v.seen[ev.ID] = true
	}
}

// statuses are the limit statuses of a call at now, one line each:
// "quota[split] metric: used U reserved R remaining N [warning] [exceeded]".
func (w *world) statuses(call projections.Call, now time.Time) []string {
	out := []string{}
	for _, s := range projections.Statuses(w.t, w.v, call, now) {
		line := s.Quota
		if s.Split != "" {
			line += "[" + s.Split + "]"
		}
		line += fmt.Sprintf(" %s: used %d reserved %d remaining %d", s.Limit.Metric, s.Used, s.Reserved, s.Remaining)
		if s.Warning {
			line += " warning"
		}
		if s.Exceeded {
			line += " exceeded"
		}
		out = append(out, line)
	}
	return out
}

// idGen returns ids gen-1, gen-2, ...
func idGen() func() string {
	n := 0
	return func() string { n++; return fmt.Sprintf("gen-%d", n) }
}

// ---- times, dimensions, quotas and events ----

// t0 is the default decision time: a Monday, 12:30 UTC. A calendar day resets
// in 11.5 hours, a calendar hour in 30 minutes.
var t0 = time.Date(2025, 3, 10, 12, 30, 0, 0, time.UTC)

// tq is when the quotas of the tables were set.
var tq = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func dims(kv ...string) events.Dimensions {
	d := events.Dimensions{}
	for i := 0; i+1 < len(kv); i += 2 {
		d[kv[i]] = kv[i+1]
	}
	return d
}

func call(d events.Dimensions, groups ...string) projections.Call {
	return projections.Call{Dims: d, Groups: groups}
}

func perDay(m events.Metric, max int64) events.Limit {
	return events.Limit{Metric: m, Max: max, Window: events.Window{Kind: events.Calendar, Unit: events.UnitDay}}
}

func perHour(m events.Metric, max int64) events.Limit {
	return events.Limit{Metric: m, Max: max, Window: events.Window{Kind: events.Calendar, Unit: events.UnitHour}}
}

func perMonth(m events.Metric, max int64) events.Limit {
	return events.Limit{Metric: m, Max: max, Window: events.Window{Kind: events.Calendar, Unit: events.UnitMonth}}
}

func sliding(m events.Metric, max, seconds int64) events.Limit {
	return events.Limit{Metric: m, Max: max, Window: events.Window{Kind: events.Sliding, Seconds: seconds}}
}

func permits(max int64) events.Limit { return events.Limit{Metric: events.MetricConcurrent, Max: max} }

func tokens(n int64) events.Amounts { return events.Amounts{Tokens: n} }

func actions(name string, n int64) events.Amounts {
	return events.Amounts{Actions: events.Counts{name: n}}
}

// daily is the quota most tables use: 100 tokens a calendar day, for everyone.
var daily = events.Quota{ID: "daily", Limits: []events.Limit{perDay(events.MetricTokens, 100)}}

var (
	alice = dims("user", "alice")
	bob   = dims("user", "bob")
)

// Given events. An empty id is filled in by newWorld.

func ev(id string, at time.Time, d events.Dimensions, p events.Payload) events.Event {
	return events.New(id, tenant, at, d, p)
}

func withGroups(e events.Event, groups ...string) events.Event { e.Groups = groups; return e }

func setQuota(q events.Quota) events.Event { return ev("", tq, nil, &events.QuotaSet{Quota: q}) }

func deleteQuota(id string) events.Event {
	return ev("", t0.Add(-time.Minute), nil, &events.QuotaDeleted{Quota: id})
}

func resetCounters(quota, split string) events.Event {
	return ev("", t0.Add(-time.Minute), nil, &events.CounterReset{Quota: quota, Split: split, Reason: "support ticket"})
}

func used(at time.Time, d events.Dimensions, a events.Amounts) events.Event {
	return ev("", at, d, &events.UsageRecorded{Amounts: a})
}

func created(res string, at time.Time, d events.Dimensions, est events.Amounts, ttl time.Duration) events.Event {
	return ev(res+":created", at, d, &events.ReservationCreated{Reservation: res, Estimate: est, ExpiresAt: at.Add(ttl)})
}

func reconciled(res string, at time.Time, actual events.Amounts) events.Event {
	return ev(res+":reconciled", at, nil, &events.ReservationReconciled{Reservation: res, Actual: actual})
}

func released(res string, at time.Time) events.Event {
	return ev(res+":released", at, nil, &events.ReservationReleased{Reservation: res, Reason: "never ran"})
}

func expired(res string, at time.Time) events.Event {
	return ev(res+":expired", at, nil, &events.ReservationExpired{Reservation: res})
}

func charged(res string, at time.Time, d events.Dimensions, a events.Amounts) events.Event {
	return ev(res+":charged", at, d, &events.UsageRecorded{Amounts: a, Decided: true})
}

func signalled(id string, at time.Time, key events.Dimensions, delay time.Duration) events.Event {
	return ev(id, at, key, &events.RetrySignalled{RetryUntil: at.Add(delay), RetryDelay: delay.String()})
}

func begun(wf string, at time.Time, d events.Dimensions) events.Event {
	return ev(wf+":begun", at, d, &events.WorkflowBegun{Workflow: wf})
}

func stepped(wf string, step int64, at time.Time, d events.Dimensions) events.Event {
	return ev(fmt.Sprintf("%s:step:%d", wf, step), at, d, &events.WorkflowStepped{Workflow: wf, Step: step})
}

func ended(wf string, at time.Time, d events.Dimensions) events.Event {
	return ev(wf+":ended", at, d, &events.WorkflowEnded{Workflow: wf, Outcome: "done"})
}

// ---- the table runner ----

type decideCase struct {
	name  string
	given []events.Event
	now   time.Time // zero: t0
	cmd   Command

	// When the command is accepted: exactly these events (none when nil)
	// and this outcome.
	want    []events.Event
	outcome string

	// When it is refused: the sentinel, entries the details must hold,
	// retry_after in seconds, substrings of the message and suggestion.
	err        error
	details    map[string]any
	retryAfter int64
	message    string
	suggestion string

	// After folding the decided events: the statuses of check (the table's
	// call when check.Dims is nil) at now. nil: not checked.
	check    projections.Call
	statuses []string

	then func(t *testing.T, w *world, d Decision)
}

// runDecide runs a table. Each case also checks that Decide is pure: it
// leaves the state alone, and deciding again gives the same answer.
func runDecide(t *testing.T, tableCall projections.Call, cases []decideCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, tc.given...)
			now := tc.now
			if now.IsZero() {
				now = t0
			}
			before := stateJSON(t, w.t)
			d, err := Decide(w.t, w.v, tc.cmd, now, idGen())
			if after := stateJSON(t, w.t); after != before {
				t.Fatalf("Decide changed the state:\nbefore %s\nafter  %s", before, after)
			}
			d2, err2 := Decide(w.t, w.v, tc.cmd, now, idGen())
			if fmt.Sprint(err) != fmt.Sprint(err2) || eventsJSON(t, d.Events) != eventsJSON(t, d2.Events) || d.Outcome != d2.Outcome {
				t.Fatalf("deciding twice differs: %v %s / %v %s", err, eventsJSON(t, d.Events), err2, eventsJSON(t, d2.Events))
			}

			if tc.err != nil {
				checkError(t, err, tc)
				if len(d.Events) != 0 {
					t.Fatalf("refused with events: %s", eventsJSON(t, d.Events))
				}
			} else {
				if err != nil {
					t.Fatalf("Decide: %v", err)
				}
				if got, want := eventsJSON(t, d.Events), eventsJSON(t, tc.want); got != want {
					t.Errorf("events:\n got %s\nwant %s", got, want)
				}
				if d.Outcome != tc.outcome {
					t.Errorf("outcome %q, want %q", d.Outcome, tc.outcome)
				}
			}

			w.fold(d.Events...)
			if tc.statuses != nil {
				c := tc.check
				if c.Dims == nil {
					c = tableCall
				}
				if got := w.statuses(c, now); !reflect.DeepEqual(got, tc.statuses) {
					t.Errorf("statuses after folding:\n got %q\nwant %q", got, tc.statuses)
				}
			}
			if tc.then != nil {
				tc.then(t, w, d)
			}
		})
	}
}

func checkError(t *testing.T, err error, tc decideCase) {
	t.Helper()
	if !errors.Is(err, tc.err) {
		t.Fatalf("error %v, want %v", err, tc.err)
	}
	var e *events.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %T is not an *events.Error", err)
	}
	for k, want := range tc.details {
		if got, ok := e.Details[k]; !ok || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("details[%q] = %v, want %v (all: %v)", k, got, want, e.Details)
		}
	}
	if e.RetryAfter != tc.retryAfter {
		t.Errorf("retry_after %d, want %d", e.RetryAfter, tc.retryAfter)
	}
	if !strings.Contains(e.Message, tc.message) {
		t.Errorf("message %q does not say %q", e.Message, tc.message)
	}
	if !strings.Contains(e.Suggestion, tc.suggestion) {
		t.Errorf("suggestion %q does not say %q", e.Suggestion, tc.suggestion)
	}
}

func eventsJSON(t *testing.T, evs []events.Event) string {
	t.Helper()
	var b strings.Builder
	for i := range evs {
		j, err := json.Marshal(evs[i])
		if err != nil {
			t.Fatalf("encode event: %v", err)
		}
		b.WriteString("\n  ")
		b.Write(j)
	}
	return b.String()
}

func stateJSON(t *testing.T, st *projections.Tenant) string {
	t.Helper()
	j, err := json.Marshal(st)
	if err != nil {
		t.Fatalf("encode state: %v", err)
	}
	return string(j)
}

// decideAndFold decides cmd and folds its events, as the decider does for
// each command of a group.
func decideAndFold(w *world, cmd Command, now time.Time, newID func() string) (Decision, error) {
	d, err := Decide(w.t, w.v, cmd, now, newID)
	if err == nil {
		w.fold(d.Events...)
	}
	return d, err
}

// ---- consume ----

var seed003Costs = events.Counts{"query": 1, "embedding": 5, "vector_search": 10, "write": 2, "transaction": 3}

func TestDecideConsume(t *testing.T) {
	hourly := events.Quota{ID: "hourly", Limits: []events.Limit{perHour(events.MetricTokens, 30)}}
	aliceOnly := events.Quota{ID: "alice", Scope: map[string]string{"user": "alice"}, Limits: []events.Limit{perDay(events.MetricTokens, 10)}}
	staff := events.Quota{ID: "staff", Scope: map[string]string{"group": "staff"}, Split: []string{"user"}, Limits: []events.Limit{perDay(events.MetricTokens, 50)}}
	soft := daily
	soft.Enforcement = events.Soft
	rpm := events.Quota{ID: "rpm", Limits: []events.Limit{sliding(events.MetricRequests, 3, 60)}}

	runDecide(t, call(alice), []decideCase{
		{
			name:  "allowed under the limit",
			given: []events.Event{setQuota(daily)},
			cmd:   Consume{ID: "u1", Dims: alice, Amounts: tokens(40)},
			want:  []events.Event{ev("u1", t0, alice, &events.UsageRecorded{Amounts: tokens(40), Decided: true})}, outcome: "consumed",
			statuses: []string{"daily tokens: used 40 reserved 0 remaining 60"},
		},
		{
			name:  "no id: the event gets a generated one",
			given: []events.Event{setQuota(daily)},
			cmd:   Consume{Dims: alice, Amounts: tokens(1)},
			want:  []events.Event{ev("gen-1", t0, alice, &events.UsageRecorded{Amounts: tokens(1), Decided: true})}, outcome: "consumed",
			statuses: []string{"daily tokens: used 1 reserved 0 remaining 99"},
		},
		{
			name:  "allowed up to the limit exactly",
			given: []events.Event{setQuota(daily), used(t0.Add(-time.Hour), alice, tokens(60))},
			cmd:   Consume{ID: "u1", Dims: alice, Amounts: tokens(40)},
			want:  []events.Event{ev("u1", t0, alice, &events.UsageRecorded{Amounts: tokens(40), Decided: true})}, outcome: "consumed",
			statuses: []string{"daily tokens: used 100 reserved 0 remaining 0 warning exceeded"},
		},
		{
			name:  "denied over a hard limit",
			given: []events.Event{setQuota(daily), used(t0.Add(-time.Hour), alice, tokens(90))},
			cmd:   Consume{ID: "u1", Dims: alice, Amounts: tokens(20)},
			err:   events.ErrQuotaExceeded, retryAfter: 41400, message: "resets in 12 hours",
			details:  map[string]any{"reason": "exceeds_limit", "quota": "daily", "metric": "tokens", "limit": 100, "used": 90, "requested": 20, "remaining": 10, "resets_at": "2025-03-11T00:00:00Z"},
			statuses: []string{"daily tokens: used 90 reserved 0 remaining 10 warning"},
		},
		{
			name:  "usage of yesterday does not count today",
			given: []events.Event{setQuota(daily), used(t0.Add(-13*time.Hour), alice, tokens(100))},
			cmd:   Consume{ID: "u1", Dims: alice, Amounts: tokens(100)},
			want:  []events.Event{ev("u1", t0, alice, &events.UsageRecorded{Amounts: tokens(100), Decided: true})}, outcome: "consumed",
			statuses: []string{"daily tokens: used 100 reserved 0 remaining 0 warning exceeded"},
		},
		{
			name:  "soft enforcement allows over the limit and warns",
			given: []events.Event{setQuota(soft), used(t0.Add(-time.Hour), alice, tokens(90))},
			cmd:   Consume{ID: "u1", Dims: alice, Amounts: tokens(20)},
			want:  []events.Event{ev("u1", t0, alice, &events.UsageRecorded{Amounts: tokens(20), Decided: true})}, outcome: "consumed",
			statuses: []string{"daily tokens: used 110 reserved 0 remaining 0 warning exceeded"},
		},
		{
			name:     "a retry with a seen id is answered exists, even past the limit",
			given:    []events.Event{setQuota(daily), ev("u1", t0.Add(-time.Minute), alice, &events.UsageRecorded{Amounts: tokens(100), Decided: true})},
			cmd:      Consume{ID: "u1", Dims: alice, Amounts: tokens(100)},
			outcome:  "exists",
			statuses: []string{"daily tokens: used 100 reserved 0 remaining 0 warning exceeded"},
		},
		{
			name:  "negative amounts are invalid",
			given: []events.Event{setQuota(daily)},
			cmd:   Consume{ID: "u1", Dims: alice, Amounts: tokens(-5)},
			err:   events.ErrInvalidArgument, details: map[string]any{"field": "tokens"},
		},
		{
			name:  "several quotas: each matching one counts the call",
			given: []events.Event{setQuota(daily), setQuota(hourly), used(t0.Add(-10*time.Minute), alice, tokens(20))},
			cmd:   Consume{ID: "u1", Dims: alice, Amounts: tokens(5)},
			want:  []events.Event{ev("u1", t0, alice, &events.UsageRecorded{Amounts: tokens(5), Decided: true})}, outcome: "consumed",
			statuses: []string{
				"daily tokens: used 25 reserved 0 remaining 75",
				"hourly tokens: used 25 reserved 0 remaining 5 warning",
			},
		},
		{
			name:  "several quotas: the most restrictive denies",
			given: []events.Event{setQuota(daily), setQuota(hourly), used(t0.Add(-10*time.Minute), alice, tokens(20))},
			cmd:   Consume{ID: "u1", Dims: alice, Amounts: tokens(15)},
			err:   events.ErrQuotaExceeded, retryAfter: 1800, message: "resets in 30 minutes",
			details: map[string]any{"reason": "exceeds_limit", "quota": "hourly", "used": 20, "requested": 15, "remaining": 10},
			statuses: []string{
				"daily tokens: used 20 reserved 0 remaining 80",
				"hourly tokens: used 20 reserved 0 remaining 10",
			},
		},
		{
			name:  "several quotas exceeded: the one that resets last is reported",
			given: []events.Event{setQuota(daily), setQuota(hourly), used(t0.Add(-10*time.Minute), alice, tokens(20))},
			cmd:   Consume{ID: "u1", Dims: alice, Amounts: tokens(90)},
			err:   events.ErrQuotaExceeded, retryAfter: 41400, message: "resets in 12 hours",
			details: map[string]any{"quota": "daily", "used": 20, "requested": 90},
		},
		{
			name:  "a quota whose scope does not match does not apply",
			given: []events.Event{setQuota(daily), setQuota(aliceOnly)},
			cmd:   Consume{ID: "u1", Dims: bob, Amounts: tokens(50)},
			want:  []events.Event{ev("u1", t0, bob, &events.UsageRecorded{Amounts: tokens(50), Decided: true})}, outcome: "consumed",
			check: call(bob), statuses: []string{"daily tokens: used 50 reserved 0 remaining 50"},
		},
		{
			name:  "a scoped quota denies its own scope",
			given: []events.Event{setQuota(daily), setQuota(aliceOnly)},
			cmd:   Consume{ID: "u1", Dims: alice, Amounts: tokens(11)},
			err:   events.ErrQuotaExceeded, retryAfter: 41400,
			details: map[string]any{"quota": "alice", "remaining": 10},
		},
		{
			name:  "a group quota is split per member (seed 001): one member is denied",
			given: []events.Event{setQuota(staff), withGroups(used(t0.Add(-time.Hour), alice, tokens(50)), "staff")},
			cmd:   Consume{ID: "u1", Dims: alice, Groups: []string{"staff"}, Amounts: tokens(1)},
			err:   events.ErrQuotaExceeded, retryAfter: 41400,
			details:  map[string]any{"quota": "staff", "split": "alice", "used": 50},
			check:    call(alice, "staff"),
			statuses: []string{"staff[alice] tokens: used 50 reserved 0 remaining 0 warning exceeded"},
		},
		{
			name:  "a group quota is split per member (seed 001): another has its own counter",
			given: []events.Event{setQuota(staff), withGroups(used(t0.Add(-time.Hour), alice, tokens(50)), "staff")},
			cmd:   Consume{ID: "u1", Dims: bob, Groups: []string{"staff"}, Amounts: tokens(10)},
			want:  []events.Event{withGroups(ev("u1", t0, bob, &events.UsageRecorded{Amounts: tokens(10), Decided: true}), "staff")}, outcome: "consumed",
			check: call(bob, "staff"), statuses: []string{"staff[bob] tokens: used 10 reserved 0 remaining 40"},
		},
		{
			name:  "a group quota does not apply outside the group",
			given: []events.Event{setQuota(staff)},
			cmd:   Consume{ID: "u1", Dims: bob, Amounts: tokens(500)},
			want:  []events.Event{ev("u1", t0, bob, &events.UsageRecorded{Amounts: tokens(500), Decided: true})}, outcome: "consumed",
			check: call(bob), statuses: []string{},
		},
		{
			name:  "sliding window: denied while the old requests are in it",
			given: []events.Event{setQuota(rpm), used(t0.Add(-30*time.Second), alice, events.Amounts{Requests: 3})},
			cmd:   Consume{ID: "u1", Dims: alice, Amounts: events.Amounts{Requests: 1}},
			err:   events.ErrQuotaExceeded, retryAfter: 30, message: "resets in 30 seconds",
			details: map[string]any{"quota": "rpm", "metric": "requests", "used": 3},
		},
		{
			name:  "sliding window: allowed once they slid out",
			given: []events.Event{setQuota(rpm), used(t0.Add(-30*time.Second), alice, events.Amounts{Requests: 3})},
			now:   t0.Add(31 * time.Second),
			cmd:   Consume{ID: "u1", Dims: alice, Amounts: events.Amounts{Requests: 1}},
			want:  []events.Event{ev("u1", t0.Add(31*time.Second), alice, &events.UsageRecorded{Amounts: events.Amounts{Requests: 1}, Decided: true})}, outcome: "consumed",
			statuses: []string{"rpm requests: used 1 reserved 0 remaining 2"},
		},
	})
}

// TestDecideConsumeCostMultipliers: tokens are multiplied by the quota's cost
// of the call's operation (seed 003's defaults).
func TestDecideConsumeCostMultipliers(t *testing.T) {
	budget := events.Quota{ID: "budget", Costs: seed003Costs, Limits: []events.Limit{perDay(events.MetricTokens, 1000)}}
	var cases []decideCase
	for _, tc := range []struct {
		op   string
		used int64
	}{{"query", 10}, {"embedding", 50}, {"vector_search", 100}, {"write", 20}, {"transaction", 30}, {"unlisted", 10}} {
		d := dims("agent", "a1", "operation", tc.op)
		cases = append(cases, decideCase{
			name:  fmt.Sprintf("10 tokens of %s cost %d", tc.op, tc.used),
			given: []events.Event{setQuota(budget)},
			cmd:   Consume{ID: "u1", Dims: d, Amounts: tokens(10)},
			want:  []events.Event{ev("u1", t0, d, &events.UsageRecorded{Amounts: tokens(10), Decided: true})}, outcome: "consumed",
			statuses: []string{fmt.Sprintf("budget tokens: used %d reserved 0 remaining %d", tc.used, 1000-tc.used)},
		})
	}
	emb := dims("agent", "a1", "operation", "embedding")
	cases = append(cases, decideCase{
		name:  "the multiplied cost is what is checked",
		given: []events.Event{setQuota(budget), used(t0.Add(-time.Hour), dims("agent", "a1", "operation", "query"), tokens(960))},
		cmd:   Consume{ID: "u1", Dims: emb, Amounts: tokens(10)},
		err:   events.ErrQuotaExceeded, retryAfter: 41400,
		details:  map[string]any{"quota": "budget", "used": 960, "requested": 50, "remaining": 40},
		statuses: []string{"budget tokens: used 960 reserved 0 remaining 40 warning"},
	}, decideCase{
		name:  "a reservation holds the multiplied estimate and settles the multiplied actual",
		given: []events.Event{setQuota(budget), created("r1", t0.Add(-time.Minute), emb, tokens(10), time.Minute)},
		cmd:   Reconcile{Reservation: "r1", Actual: tokens(4)},
		want:  []events.Event{reconciled("r1", t0, tokens(4))}, outcome: "reconciled",
		statuses: []string{"budget tokens: used 20 reserved 0 remaining 980"},
	})
	runDecide(t, call(dims("agent", "a1")), cases)
}

// ---- reserve ----

func TestDecideReserve(t *testing.T) {
	aliceOnly := events.Quota{ID: "alice", Scope: map[string]string{"user": "alice"}, Limits: []events.Limit{perDay(events.MetricTokens, 20)}}
	twoMetrics := events.Quota{ID: "daily", Limits: []events.Limit{perDay(events.MetricTokens, 100), perDay(events.MetricRequests, 1)}}
	res := func(id string, at time.Time, est int64, ttl time.Duration) events.Event {
		return created(id, at, alice, tokens(est), ttl)
	}

	runDecide(t, call(alice), []decideCase{
		{
			name:  "created: the estimate is held, TTL 60 s by default",
			given: []events.Event{setQuota(daily)},
			cmd:   Reserve{Reservation: "r1", Dims: alice, Estimate: tokens(30)},
			want:  []events.Event{res("r1", t0, 30, time.Minute)}, outcome: "created",
			statuses: []string{"daily tokens: used 0 reserved 30 remaining 70"},
			then: func(t *testing.T, w *world, d Decision) {
				if !d.ExpiresAt.Equal(t0.Add(DefaultTTL)) {
					t.Errorf("expires at %s", d.ExpiresAt)
				}
			},
		},
		{
			name:  "a given TTL",
			given: []events.Event{setQuota(daily)},
			cmd:   Reserve{Reservation: "r1", Dims: alice, Estimate: tokens(30), TTL: 5 * time.Minute},
			want:  []events.Event{res("r1", t0, 30, 5*time.Minute)}, outcome: "created",
		},
		{
			name:  "a TTL of the maximum, 24 h",
			given: []events.Event{setQuota(daily)},
			cmd:   Reserve{Reservation: "r1", Dims: alice, Estimate: tokens(30), TTL: MaxTTL},
			want:  []events.Event{res("r1", t0, 30, 24*time.Hour)}, outcome: "created",
		},
		{
			name:  "a TTL over 24 h is invalid",
			given: []events.Event{setQuota(daily)},
			cmd:   Reserve{Reservation: "r1", Dims: alice, Estimate: tokens(30), TTL: MaxTTL + time.Second},
			err:   events.ErrInvalidArgument, details: map[string]any{"field": "ttl_ms"},
		},
		{
			name:  "a negative TTL is invalid",
			given: []events.Event{setQuota(daily)},
			cmd:   Reserve{Reservation: "r1", Dims: alice, Estimate: tokens(30), TTL: -time.Second},
			err:   events.ErrInvalidArgument, details: map[string]any{"field": "ttl_ms"},
		},
		{
			name:  "a reservation id with a space is invalid",
			given: []events.Event{setQuota(daily)},
			cmd:   Reserve{Reservation: "r 1", Dims: alice, Estimate: tokens(30)},
			err:   events.ErrInvalidArgument, details: map[string]any{"field": "reservation"},
		},
		{
			name:  "fits with what is used and held",
			given: []events.Event{setQuota(daily), used(t0.Add(-time.Hour), alice, tokens(40)), res("r0", t0.Add(-time.Minute), 30, time.Hour)},
			cmd:   Reserve{Reservation: "r1", Dims: alice, Estimate: tokens(30)},
			want:  []events.Event{res("r1", t0, 30, time.Minute)}, outcome: "created",
			statuses: []string{"daily tokens: used 40 reserved 60 remaining 0 warning exceeded"},
		},
		{
			name:  "denied when used + held + estimate passes the limit",
			given: []events.Event{setQuota(daily), used(t0.Add(-time.Hour), alice, tokens(40)), res("r0", t0.Add(-time.Minute), 30, time.Hour)},
			cmd:   Reserve{Reservation: "r1", Dims: alice, Estimate: tokens(31)},
			err:   events.ErrQuotaExceeded, retryAfter: 41400, message: "resets in 12 hours",
			details:  map[string]any{"reason": "exceeds_limit", "used": 40, "reserved": 30, "requested": 31, "remaining": 30},
			statuses: []string{"daily tokens: used 40 reserved 30 remaining 30"},
		},
		{
			name:  "all or nothing: one matching quota short, nothing is held anywhere",
			given: []events.Event{setQuota(daily), setQuota(aliceOnly)},
			cmd:   Reserve{Reservation: "r1", Dims: alice, Estimate: tokens(30)},
			err:   events.ErrQuotaExceeded, retryAfter: 41400,
			details: map[string]any{"quota": "alice", "requested": 30, "remaining": 20},
			statuses: []string{
				"alice tokens: used 0 reserved 0 remaining 20",
				"daily tokens: used 0 reserved 0 remaining 100",
			},
		},
		{
			name:  "all or nothing: one limit of a quota short, the other holds nothing",
			given: []events.Event{setQuota(twoMetrics), used(t0.Add(-time.Hour), alice, events.Amounts{Tokens: 10, Requests: 1})},
			cmd:   Reserve{Reservation: "r1", Dims: alice, Estimate: events.Amounts{Tokens: 10, Requests: 1}},
			err:   events.ErrQuotaExceeded, retryAfter: 41400,
			details: map[string]any{"quota": "daily", "metric": "requests"},
			statuses: []string{
				"daily tokens: used 10 reserved 0 remaining 90",
				"daily requests: used 1 reserved 0 remaining 0 warning exceeded",
			},
		},
		{
			name:     "a retried reserve answers exists without new events",
			given:    []events.Event{setQuota(daily), res("r1", t0.Add(-10*time.Second), 30, time.Minute)},
			cmd:      Reserve{Reservation: "r1", Dims: alice, Estimate: tokens(30)},
			outcome:  "exists",
			statuses: []string{"daily tokens: used 0 reserved 30 remaining 70"},
			then: func(t *testing.T, w *world, d Decision) {
				if !d.ExpiresAt.Equal(t0.Add(50 * time.Second)) {
					t.Errorf("exists answers expires_at %s, want the first one's", d.ExpiresAt)
				}
			},
		},
		{
			name:    "a retried reserve answers exists even when the limit is full now",
			given:   []events.Event{setQuota(daily), res("r1", t0.Add(-10*time.Second), 30, time.Minute), used(t0.Add(-5*time.Second), alice, tokens(70))},
			cmd:     Reserve{Reservation: "r1", Dims: alice, Estimate: tokens(30)},
			outcome: "exists",
		},
		{
			name:  "reserving an id already reconciled is a conflict",
			given: []events.Event{setQuota(daily), res("r1", t0.Add(-time.Minute), 30, time.Minute), reconciled("r1", t0.Add(-30*time.Second), tokens(20))},
			cmd:   Reserve{Reservation: "r1", Dims: alice, Estimate: tokens(30)},
			err:   events.ErrConflict, details: map[string]any{"reservation": "r1", "outcome": "reconciled"}, suggestion: "new reservation id",
			statuses: []string{"daily tokens: used 20 reserved 0 remaining 80"},
		},
		{
			name:  "reserving an id already released is a conflict",
			given: []events.Event{setQuota(daily), res("r1", t0.Add(-time.Minute), 30, time.Minute), released("r1", t0.Add(-30*time.Second))},
			cmd:   Reserve{Reservation: "r1", Dims: alice, Estimate: tokens(30)},
			err:   events.ErrConflict, details: map[string]any{"outcome": "released"}, suggestion: "new reservation id",
		},
		{
			name:  "reserving an id already expired is a conflict",
			given: []events.Event{setQuota(daily), res("r1", t0.Add(-2*time.Minute), 30, time.Minute), expired("r1", t0.Add(-time.Minute))},
			cmd:   Reserve{Reservation: "r1", Dims: alice, Estimate: tokens(30)},
			err:   events.ErrConflict, details: map[string]any{"outcome": "expired"}, suggestion: "new reservation id",
		},
		{
			// r1 is settled 26 hours ago and forgotten when r2 settles: its
			// events' ids would make a second r1 a duplicate to every fold.
			name: "reserving an id settled and forgotten since is still a conflict",
			given: []events.Event{setQuota(daily), res("r1", t0.Add(-26*time.Hour), 30, time.Minute), reconciled("r1", t0.Add(-26*time.Hour), tokens(20)),
				res("r2", t0.Add(-time.Minute), 10, time.Minute), reconciled("r2", t0.Add(-30*time.Second), tokens(10))},
			cmd: Reserve{Reservation: "r1", Dims: alice, Estimate: tokens(30)},
			err: events.ErrConflict, details: map[string]any{"reservation": "r1"}, message: "used before", suggestion: "new reservation id",
			then: func(t *testing.T, w *world, d Decision) {
				if _, ok := w.v.settled["r1"]; ok {
					t.Error("r1 is still remembered as settled: the case does not test a forgotten id")
				}
			},
		},
	})
}

// TestDecideReservePermits: a concurrent limit of N admits N open
// reservations; the next is too_many_runs until one is settled.
func TestDecideReservePermits(t *testing.T) {
	q := events.Quota{ID: "permits", Scope: map[string]string{"model": "gemini"}, Limits: []events.Limit{permits(2)}}
	m := dims("model", "gemini", "user", "alice")
	one := events.Amounts{Requests: 1}
	r1 := created("r1", t0.Add(-20*time.Second), m, one, time.Minute) // expires at t0+40s
	r2 := created("r2", t0.Add(-10*time.Second), m, one, time.Minute) // expires at t0+50s
	r3 := created("r3", t0, m, one, time.Minute)

	runDecide(t, call(m), []decideCase{
		{
			name:  "a reserve takes a permit",
			given: []events.Event{setQuota(q), r1},
			cmd:   Reserve{Reservation: "r3", Dims: m, Estimate: one},
			want:  []events.Event{r3}, outcome: "created",
			statuses: []string{"permits concurrent: used 0 reserved 2 remaining 0 warning exceeded"},
		},
		{
			name:  "the N+1th reserve is too_many_runs until the first permit comes back",
			given: []events.Event{setQuota(q), r1, r2},
			cmd:   Reserve{Reservation: "r3", Dims: m, Estimate: one},
			err:   events.ErrQuotaExceeded, retryAfter: 40, message: "resets in 40 seconds",
			details:  map[string]any{"reason": "too_many_runs", "quota": "permits", "metric": "concurrent", "limit": 2, "reserved": 2, "requested": 1, "resets_at": "2025-03-10T12:30:40Z"},
			statuses: []string{"permits concurrent: used 0 reserved 2 remaining 0 warning exceeded"},
		},
		{
			name:  "a release gives the permit back",
			given: []events.Event{setQuota(q), r1, r2, released("r1", t0.Add(-time.Second))},
			cmd:   Reserve{Reservation: "r3", Dims: m, Estimate: one},
			want:  []events.Event{r3}, outcome: "created",
			statuses: []string{"permits concurrent: used 0 reserved 2 remaining 0 warning exceeded"},
		},
		{
			name:  "a reconcile gives the permit back (and counts no usage on it)",
			given: []events.Event{setQuota(q), r1, r2, reconciled("r1", t0.Add(-time.Second), events.Amounts{Requests: 1, Tokens: 500})},
			cmd:   Reserve{Reservation: "r3", Dims: m, Estimate: one},
			want:  []events.Event{r3}, outcome: "created",
			statuses: []string{"permits concurrent: used 0 reserved 2 remaining 0 warning exceeded"},
		},
		{
			name:  "an expiry gives the permit back",
			given: []events.Event{setQuota(q), r1, r2, expired("r1", t0.Add(-time.Second))},
			cmd:   Reserve{Reservation: "r3", Dims: m, Estimate: one},
			want:  []events.Event{r3}, outcome: "created",
		},
		{
			name:  "a call outside the quota's scope takes no permit",
			given: []events.Event{setQuota(q), r1, r2},
			cmd:   Reserve{Reservation: "r3", Dims: dims("model", "claude"), Estimate: one},
			want:  []events.Event{created("r3", t0, dims("model", "claude"), one, time.Minute)}, outcome: "created",
		},
	})
}

// ---- reconcile ----

func TestDecideReconcile(t *testing.T) {
	r1 := created("r1", t0.Add(-5*time.Minute), alice, tokens(50), 10*time.Minute)
	lateNight := time.Date(2025, 3, 9, 23, 50, 0, 0, time.UTC)
	afterMidnight := time.Date(2025, 3, 10, 0, 10, 0, 0, time.UTC)
	late := created("r1", lateNight, alice, tokens(50), 30*time.Minute)
	yesterday := func(want string) func(*testing.T, *world, Decision) {
		return func(t *testing.T, w *world, _ Decision) {
			t.Helper()
			got := w.statuses(call(alice), lateNight.Add(9*time.Minute))
			if len(got) != 1 || got[0] != want {
				t.Errorf("the day before: %q, want %q", got, want)
			}
		}
	}
	key := dims("model", "gemini")
	md := dims("model", "gemini", "user", "alice")

	runDecide(t, call(alice), []decideCase{
		{
			name:  "surplus returned",
			given: []events.Event{setQuota(daily), r1},
			cmd:   Reconcile{Reservation: "r1", Actual: tokens(30)},
			want:  []events.Event{reconciled("r1", t0, tokens(30))}, outcome: "reconciled",
			statuses: []string{"daily tokens: used 30 reserved 0 remaining 70"},
		},
		{
			name:  "shortfall charged",
			given: []events.Event{setQuota(daily), r1},
			cmd:   Reconcile{Reservation: "r1", Actual: tokens(80)},
			want:  []events.Event{reconciled("r1", t0, tokens(80))}, outcome: "reconciled",
			statuses: []string{"daily tokens: used 80 reserved 0 remaining 20 warning"},
		},
		{
			name:  "a shortfall past the limit is charged all the same: usage is a fact",
			given: []events.Event{setQuota(daily), used(t0.Add(-time.Hour), alice, tokens(40)), r1},
			cmd:   Reconcile{Reservation: "r1", Actual: tokens(90)},
			want:  []events.Event{reconciled("r1", t0, tokens(90))}, outcome: "reconciled",
			statuses: []string{"daily tokens: used 130 reserved 0 remaining 0 warning exceeded"},
		},
		{
			name:  "usage lands in the reservation's window, not today's",
			given: []events.Event{setQuota(daily), late},
			now:   afterMidnight,
			cmd:   Reconcile{Reservation: "r1", Actual: tokens(40)},
			want:  []events.Event{reconciled("r1", afterMidnight, tokens(40))}, outcome: "reconciled",
			statuses: []string{"daily tokens: used 0 reserved 0 remaining 100"},
			then:     yesterday("daily tokens: used 40 reserved 0 remaining 60"),
		},
		{
			name:     "reconcile twice is idempotent",
			given:    []events.Event{setQuota(daily), r1, reconciled("r1", t0.Add(-time.Minute), tokens(30))},
			cmd:      Reconcile{Reservation: "r1", Actual: tokens(30)},
			outcome:  "reconciled",
			statuses: []string{"daily tokens: used 30 reserved 0 remaining 70"},
		},
		{
			name:  "reconcile after expiry charges the usage at the reservation's creation",
			given: []events.Event{setQuota(daily), withGroups(r1, "staff"), expired("r1", t0.Add(-time.Minute))},
			cmd:   Reconcile{Reservation: "r1", Actual: tokens(30)},
			want:  []events.Event{withGroups(charged("r1", t0.Add(-5*time.Minute), alice, tokens(30)), "staff")}, outcome: "charged",
			statuses: []string{"daily tokens: used 30 reserved 0 remaining 70"},
		},
		{
			name:  "reconcile after expiry: the charge lands in the reservation's window",
			given: []events.Event{setQuota(daily), late, expired("r1", lateNight.Add(30*time.Minute))},
			now:   afterMidnight.Add(30 * time.Minute),
			cmd:   Reconcile{Reservation: "r1", Actual: tokens(40)},
			want:  []events.Event{charged("r1", lateNight, alice, tokens(40))}, outcome: "charged",
			statuses: []string{"daily tokens: used 0 reserved 0 remaining 100"},
			then:     yesterday("daily tokens: used 40 reserved 0 remaining 60"),
		},
		{
			name:  "reconcile after release: the call ran after all, it is charged",
			given: []events.Event{setQuota(daily), r1, released("r1", t0.Add(-time.Minute))},
			cmd:   Reconcile{Reservation: "r1", Actual: tokens(30)},
			want:  []events.Event{charged("r1", t0.Add(-5*time.Minute), alice, tokens(30))}, outcome: "charged",
			statuses: []string{"daily tokens: used 30 reserved 0 remaining 70"},
		},
		{
			name:     "a late reconcile is charged once",
			given:    []events.Event{setQuota(daily), r1, expired("r1", t0.Add(-2*time.Minute)), charged("r1", t0.Add(-5*time.Minute), alice, tokens(30))},
			cmd:      Reconcile{Reservation: "r1", Actual: tokens(30)},
			outcome:  "charged",
			statuses: []string{"daily tokens: used 30 reserved 0 remaining 70"},
		},
		{
			name:  "an unknown reservation is not_found",
			given: []events.Event{setQuota(daily)},
			cmd:   Reconcile{Reservation: "nope", Actual: tokens(30)},
			err:   events.ErrNotFound, details: map[string]any{"reservation": "nope"},
		},
		{
			name:  "negative actual usage is invalid",
			given: []events.Event{setQuota(daily), r1},
			cmd:   Reconcile{Reservation: "r1", Actual: tokens(-1)},
			err:   events.ErrInvalidArgument,
		},
		{
			name: "reconcile clears the standing retry signals on the reservation's key",
			given: []events.Event{
				setQuota(daily), created("r1", t0.Add(-time.Minute), md, tokens(50), time.Hour),
				signalled("s1", t0.Add(-10*time.Second), key, time.Minute),
				signalled("s2", t0.Add(-10*time.Second), dims("model", "claude"), time.Minute),
			},
			cmd:  Reconcile{Reservation: "r1", Actual: tokens(30)},
			want: []events.Event{reconciled("r1", t0, tokens(30)), ev("gen-1", t0, key, &events.RetryCleared{})}, outcome: "reconciled",
			check: call(md), statuses: []string{"daily tokens: used 30 reserved 0 remaining 70"},
			then: func(t *testing.T, w *world, _ Decision) {
				if _, ok := w.t.Retries["model=claude"]; !ok || len(w.t.Retries) != 1 {
					t.Errorf("retries left %v, want only model=claude", w.t.Retries)
				}
				if _, err := decideAndFold(w, Consume{ID: "next", Dims: md, Amounts: tokens(1)}, t0, idGen()); err != nil {
					t.Errorf("a call on the key after the reconcile: %v", err)
				}
			},
		},
	})
}

// ---- release and expire ----

func TestDecideReleaseAndExpire(t *testing.T) {
	r1 := created("r1", t0.Add(-30*time.Second), alice, tokens(30), time.Minute) // expires at t0+30s

	runDecide(t, call(alice), []decideCase{
		{
			name:  "release gives the hold back",
			given: []events.Event{setQuota(daily), r1},
			cmd:   Release{Reservation: "r1", Reason: "never ran"},
			want:  []events.Event{released("r1", t0)}, outcome: "released",
			statuses: []string{"daily tokens: used 0 reserved 0 remaining 100"},
		},
		{
			name:     "release twice is idempotent",
			given:    []events.Event{setQuota(daily), r1, released("r1", t0.Add(-time.Second))},
			cmd:      Release{Reservation: "r1"},
			outcome:  "released",
			statuses: []string{"daily tokens: used 0 reserved 0 remaining 100"},
		},
		{
			name:     "release after reconcile answers how it ended",
			given:    []events.Event{setQuota(daily), r1, reconciled("r1", t0.Add(-time.Second), tokens(20))},
			cmd:      Release{Reservation: "r1"},
			outcome:  "reconciled",
			statuses: []string{"daily tokens: used 20 reserved 0 remaining 80"},
		},
		{
			name:    "release after expiry answers expired",
			given:   []events.Event{setQuota(daily), r1, expired("r1", t0)},
			cmd:     Release{Reservation: "r1"},
			outcome: "expired",
		},
		{
			name:  "release of an unknown reservation is not_found",
			given: []events.Event{setQuota(daily)},
			cmd:   Release{Reservation: "nope"},
			err:   events.ErrNotFound, details: map[string]any{"reservation": "nope"},
		},
		{
			name:     "expire before ExpiresAt does nothing",
			given:    []events.Event{setQuota(daily), r1},
			now:      t0.Add(29 * time.Second),
			cmd:      Expire{Reservation: "r1"},
			statuses: []string{"daily tokens: used 0 reserved 30 remaining 70"},
		},
		{
			name:  "expire at ExpiresAt appends reservation.expired",
			given: []events.Event{setQuota(daily), r1},
			now:   t0.Add(30 * time.Second),
			cmd:   Expire{Reservation: "r1"},
			want:  []events.Event{expired("r1", t0.Add(30*time.Second))}, outcome: "expired",
			statuses: []string{"daily tokens: used 0 reserved 0 remaining 100"},
		},
		{
			name:  "expire long after",
			given: []events.Event{setQuota(daily), r1},
			now:   t0.Add(time.Hour),
			cmd:   Expire{Reservation: "r1"},
			want:  []events.Event{expired("r1", t0.Add(time.Hour))}, outcome: "expired",
			statuses: []string{"daily tokens: used 0 reserved 0 remaining 100"},
		},
		{
			name:  "expire of a released reservation does nothing",
			given: []events.Event{setQuota(daily), r1, released("r1", t0)},
			now:   t0.Add(time.Hour),
			cmd:   Expire{Reservation: "r1"},
		},
		{
			name:  "expire of an unknown reservation does nothing",
			given: []events.Event{setQuota(daily)},
			now:   t0.Add(time.Hour),
			cmd:   Expire{Reservation: "nope"},
		},
	})
}

// ---- retry signals ----

func TestDecideRetrySignals(t *testing.T) {
	key := dims("model", "gemini", "location", "us-central1", "metric", "tokens")
	onKey := dims("model", "gemini", "location", "us-central1", "metric", "tokens", "user", "alice")
	s1 := signalled("s1", t0, key, time.Minute) // retry until t0+60s
	signal := SignalRetry{
		Key: key, RetryDelay: "60s",
		QuotaMetric:     "generativelanguage.googleapis.com/generate_content_paid_tier_input_token_count",
		QuotaID:         "GenerateContentPaidTierInputTokensPerModelPerMinute",
		QuotaDimensions: map[string]string{"model": "gemini", "location": "us-central1"},
	}
	waits := func(name string, now time.Time, cmd Command, retryAfter int64) decideCase {
		return decideCase{
			name: name, given: []events.Event{setQuota(daily), s1}, now: now, cmd: cmd,
			err: events.ErrRetryLater, retryAfter: retryAfter,
			details:    map[string]any{"retry_until": "2025-03-10T12:31:00Z", "key": "location=us-central1,metric=tokens,model=gemini"},
			suggestion: "retry_until",
		}
	}
	allowed := func(name string, given []events.Event, now time.Time, d events.Dimensions) decideCase {
		return decideCase{
			name: name, given: given, now: now,
			cmd:  Consume{ID: "u1", Dims: d, Amounts: tokens(1)},
			want: []events.Event{ev("u1", now, d, &events.UsageRecorded{Amounts: tokens(1), Decided: true})}, outcome: "consumed",
		}
	}
	badDelay := func(delay string) decideCase {
		return decideCase{
			name: fmt.Sprintf("retry_delay %q is invalid", delay),
			cmd:  SignalRetry{Key: key, RetryDelay: delay},
			err:  events.ErrInvalidArgument, details: map[string]any{"field": "retry_delay"},
		}
	}

	runDecide(t, call(onKey), []decideCase{
		{
			name: "a signal records retry_until = now + retry_delay",
			cmd:  signal,
			want: []events.Event{ev("gen-1", t0, key, &events.RetrySignalled{
				RetryUntil: t0.Add(time.Minute), RetryDelay: "60s",
				QuotaMetric: signal.QuotaMetric, QuotaID: signal.QuotaID, QuotaDimensions: signal.QuotaDimensions,
			})},
			then: func(t *testing.T, w *world, d Decision) {
				if !d.ExpiresAt.Equal(t0.Add(time.Minute)) {
					t.Errorf("retry until %s", d.ExpiresAt)
				}
				_, err := Decide(w.t, w.v, Consume{ID: "u1", Dims: onKey, Amounts: tokens(1)}, t0, idGen())
				var e *events.Error
				if !errors.As(err, &e) || e.Code != events.CodeRetryLater || e.Details["quota_metric"] != signal.QuotaMetric || e.Details["quota_id"] != signal.QuotaID {
					t.Errorf("a consume right after the signal: %v", err)
				}
			},
		},
		waits("a consume on the key answers retry_later", t0, Consume{ID: "u1", Dims: onKey, Amounts: tokens(1)}, 60),
		waits("a reserve on the key answers retry_later", t0, Reserve{Reservation: "r1", Dims: onKey, Estimate: tokens(1)}, 60),
		waits("a workflow begun on the key answers retry_later", t0, BeginWorkflow{Workflow: "w1", Dims: onKey}, 60),
		waits("retry_after counts down", t0.Add(30*time.Second), Consume{ID: "u1", Dims: onKey, Amounts: tokens(1)}, 30),
		waits("retry_after is rounded up to whole seconds", t0.Add(59500*time.Millisecond), Consume{ID: "u1", Dims: onKey, Amounts: tokens(1)}, 1),
		{
			name:  "the message says how long to wait",
			given: []events.Event{s1},
			cmd:   Consume{ID: "u1", Dims: onKey, Amounts: tokens(1)},
			err:   events.ErrRetryLater, retryAfter: 60, message: "1 minute",
			details: map[string]any{"retry_until": "2025-03-10T12:31:00Z"},
		},
		{
			name:    "a retried consume with a seen id is answered, not blocked",
			given:   []events.Event{s1, ev("u1", t0.Add(-time.Second), onKey, &events.UsageRecorded{Amounts: tokens(1), Decided: true})},
			cmd:     Consume{ID: "u1", Dims: onKey, Amounts: tokens(1)},
			outcome: "exists",
		},
		{
			name:  "the longest standing signal on the call's dims wins",
			given: []events.Event{s1, signalled("s2", t0, dims("model", "gemini"), 90*time.Second)},
			cmd:   Consume{ID: "u1", Dims: onKey, Amounts: tokens(1)},
			err:   events.ErrRetryLater, retryAfter: 90, details: map[string]any{"key": "model=gemini"},
		},
		{
			name:  "a newer signal on the same key replaces the older",
			given: []events.Event{signalled("s0", t0.Add(-30*time.Second), key, 10*time.Minute), signalled("s1", t0, key, 10*time.Second)},
			cmd:   Consume{ID: "u1", Dims: onKey, Amounts: tokens(1)},
			err:   events.ErrRetryLater, retryAfter: 10,
		},
		allowed("a call without the whole key is not blocked", []events.Event{setQuota(daily), s1}, t0, dims("model", "gemini", "location", "europe-west4", "metric", "tokens")),
		allowed("at retry_until calls are allowed again", []events.Event{setQuota(daily), s1}, t0.Add(time.Minute), onKey),
		allowed("after retry_until calls are allowed again", []events.Event{setQuota(daily), s1}, t0.Add(61*time.Second), onKey),
		allowed("a cleared signal no longer blocks", []events.Event{setQuota(daily), s1, ev("", t0.Add(time.Second), key, &events.RetryCleared{})}, t0.Add(2*time.Second), onKey),
		{
			name:  "ClearRetry clears a standing signal",
			given: []events.Event{s1},
			cmd:   ClearRetry{Key: key},
			want:  []events.Event{ev("gen-1", t0, key, &events.RetryCleared{})},
			then: func(t *testing.T, w *world, _ Decision) {
				if len(w.t.Retries) != 0 {
					t.Errorf("retries left: %v", w.t.Retries)
				}
				if _, err := decideAndFold(w, Consume{ID: "u1", Dims: onKey, Amounts: tokens(1)}, t0, idGen()); err != nil {
					t.Errorf("a call after the clear: %v", err)
				}
			},
		},
		{
			name: "ClearRetry without a signal does nothing",
			cmd:  ClearRetry{Key: key},
		},
		badDelay("soon"),
		badDelay(""),
		badDelay("0s"),
		badDelay("-5s"),
		badDelay("25h"),
		{
			name: "a signal needs a key",
			cmd:  SignalRetry{RetryDelay: "60s"},
			err:  events.ErrInvalidArgument, details: map[string]any{"field": "key"},
		},
	})
}

// ---- workflows ----

func TestDecideWorkflows(t *testing.T) {
	a1 := dims("agent", "a1")
	agents := events.Quota{ID: "agents", Scope: map[string]string{"agent": "a1"}, MaxSteps: 3, Limits: []events.Limit{perHour(events.MetricWorkflows, 2)}}
	withTokens := agents
	withTokens.Limits = []events.Limit{perHour(events.MetricWorkflows, 2), perDay(events.MetricTokens, 100)}
	earlier := t0.Add(-10 * time.Minute)
	steps := func(wf string, n int64) []events.Event {
		var out []events.Event
		for i := int64(1); i <= n; i++ {
			out = append(out, stepped(wf, i, earlier, a1))
		}
		return out
	}
	given := func(evs ...[]events.Event) []events.Event {
		var out []events.Event
		for _, e := range evs {
			out = append(out, e...)
		}
		return out
	}
	q := []events.Event{setQuota(agents)}
	maxSteps := func(steps, max int64) func(*testing.T, *world, Decision) {
		return func(t *testing.T, _ *world, d Decision) {
			if d.Steps != steps || d.MaxSteps != max {
				t.Errorf("steps %d of %d, want %d of %d", d.Steps, d.MaxSteps, steps, max)
			}
		}
	}

	runDecide(t, call(a1), []decideCase{
		{
			name:  "begin counts against the workflows limit",
			given: q,
			cmd:   BeginWorkflow{Workflow: "w1", Dims: a1},
			want:  []events.Event{begun("w1", t0, a1)}, outcome: "begun",
			statuses: []string{"agents workflows: used 1 reserved 0 remaining 1"},
			then:     maxSteps(0, 3),
		},
		{
			name:  "begin past the limit is workflow_limit, with a suggestion",
			given: given(q, []events.Event{begun("w1", earlier, a1), begun("w2", earlier, a1)}),
			cmd:   BeginWorkflow{Workflow: "w3", Dims: a1},
			err:   events.ErrWorkflowLimit, retryAfter: 1800, message: "resets in 30 minutes", suggestion: "fewer workflows",
			details:  map[string]any{"quota": "agents", "current": 2, "limit": 2, "resets_at": "2025-03-10T13:00:00Z"},
			statuses: []string{"agents workflows: used 2 reserved 0 remaining 0 warning exceeded"},
		},
		{
			name:  "ended workflows still count in their period",
			given: given(q, []events.Event{begun("w1", earlier, a1), ended("w1", earlier, a1), begun("w2", earlier, a1)}),
			cmd:   BeginWorkflow{Workflow: "w3", Dims: a1},
			err:   events.ErrWorkflowLimit, retryAfter: 1800,
		},
		{
			name:  "the next period starts afresh",
			given: given(q, []events.Event{begun("w1", t0.Add(-40*time.Minute), a1), begun("w2", t0.Add(-40*time.Minute), a1)}),
			cmd:   BeginWorkflow{Workflow: "w3", Dims: a1},
			want:  []events.Event{begun("w3", t0, a1)}, outcome: "begun",
			statuses: []string{"agents workflows: used 1 reserved 0 remaining 1"},
		},
		{
			name:  "other agents are not limited",
			given: given(q, []events.Event{begun("w1", earlier, a1), begun("w2", earlier, a1)}),
			cmd:   BeginWorkflow{Workflow: "w3", Dims: dims("agent", "a2")},
			want:  []events.Event{begun("w3", t0, dims("agent", "a2"))}, outcome: "begun",
			then: maxSteps(0, 0),
		},
		{
			name:     "begin of an active workflow answers exists",
			given:    given(q, []events.Event{begun("w1", earlier, a1)}),
			cmd:      BeginWorkflow{Workflow: "w1", Dims: a1},
			outcome:  "exists",
			statuses: []string{"agents workflows: used 1 reserved 0 remaining 1"},
		},
		{
			name:  "a workflow id that already ran is a conflict",
			given: given(q, []events.Event{begun("w1", earlier, a1), ended("w1", earlier, a1)}),
			cmd:   BeginWorkflow{Workflow: "w1", Dims: a1},
			err:   events.ErrConflict, details: map[string]any{"workflow": "w1"}, suggestion: "new workflow id",
		},
		{
			name:  "a step counts the workflow's steps",
			given: given(q, []events.Event{begun("w1", earlier, a1)}),
			cmd:   StepWorkflow{Workflow: "w1"},
			want:  []events.Event{stepped("w1", 1, t0, a1)},
			then:  maxSteps(1, 3),
		},
		{
			name:  "the last allowed step",
			given: given(q, []events.Event{begun("w1", earlier, a1)}, steps("w1", 2)),
			cmd:   StepWorkflow{Workflow: "w1"},
			want:  []events.Event{stepped("w1", 3, t0, a1)},
			then:  maxSteps(3, 3),
		},
		{
			name:  "a step after max_steps steps is step_limit, with a suggestion",
			given: given(q, []events.Event{begun("w1", earlier, a1)}, steps("w1", 3)),
			cmd:   StepWorkflow{Workflow: "w1"},
			err:   events.ErrStepLimit, suggestion: "end this workflow",
			details: map[string]any{"workflow": "w1", "steps_executed": 3, "max_steps": 3},
			then:    maxSteps(3, 3),
		},
		{
			name:  "steps are unlimited without max_steps",
			given: given([]events.Event{begun("w1", earlier, a1)}, steps("w1", 5)),
			cmd:   StepWorkflow{Workflow: "w1"},
			want:  []events.Event{stepped("w1", 6, t0, a1)},
			then:  maxSteps(6, 0),
		},
		{
			name:  "a step of an unknown workflow is not_found",
			given: q,
			cmd:   StepWorkflow{Workflow: "nope"},
			err:   events.ErrNotFound, details: map[string]any{"workflow": "nope"},
		},
		{
			name:  "a step of an ended workflow is not_found",
			given: given(q, []events.Event{begun("w1", earlier, a1), ended("w1", earlier, a1)}),
			cmd:   StepWorkflow{Workflow: "w1"},
			err:   events.ErrNotFound,
		},
		{
			name:  "end",
			given: given(q, []events.Event{begun("w1", earlier, a1)}, steps("w1", 2)),
			cmd:   EndWorkflow{Workflow: "w1", Outcome: "done"},
			want:  []events.Event{ended("w1", t0, a1)}, outcome: "ended",
			statuses: []string{"agents workflows: used 1 reserved 0 remaining 1"},
			then: func(t *testing.T, w *world, d Decision) {
				if d.Steps != 2 || len(w.t.Workflows) != 0 {
					t.Errorf("steps %d, active %v", d.Steps, w.t.Workflows)
				}
			},
		},
		{
			name:    "end twice answers ended",
			given:   given(q, []events.Event{begun("w1", earlier, a1), ended("w1", earlier, a1)}),
			cmd:     EndWorkflow{Workflow: "w1"},
			outcome: "ended",
		},
		{
			name:  "end of an unknown workflow is not_found",
			given: q,
			cmd:   EndWorkflow{Workflow: "nope"},
			err:   events.ErrNotFound,
		},
		{
			name:  "usage inside a running workflow is not refused because no more workflows may begin",
			given: []events.Event{setQuota(withTokens), begun("w1", earlier, a1), begun("w2", earlier, a1)},
			cmd:   Consume{ID: "u1", Dims: a1, Amounts: tokens(10)},
			want:  []events.Event{ev("u1", t0, a1, &events.UsageRecorded{Amounts: tokens(10), Decided: true})}, outcome: "consumed",
			statuses: []string{
				"agents workflows: used 2 reserved 0 remaining 0 warning exceeded",
				"agents tokens: used 10 reserved 0 remaining 90",
			},
		},
		{
			name:  "a workflow does not begin when its tokens are spent",
			given: []events.Event{setQuota(withTokens), used(earlier, a1, tokens(100))},
			cmd:   BeginWorkflow{Workflow: "w1", Dims: a1},
			err:   events.ErrQuotaExceeded, retryAfter: 41400,
			details: map[string]any{"quota": "agents", "metric": "tokens"},
		},
	})
}

// ---- named actions (seed 000) ----

func TestDecideNamedActions(t *testing.T) {
	p1 := dims("project", "p1")
	runs := events.Quota{ID: "runs", Scope: map[string]string{"project": "p1"}, Limits: []events.Limit{
		perMonth(events.ActionMetric("new_run"), 2),
		perMonth(events.ActionMetric("activate_workflow"), 1),
	}}
	ai := events.Quota{ID: "ai", Split: []string{"session"}, Limits: []events.Limit{perDay(events.ActionMetric("ai_query"), 2)}}
	s1 := dims("project", "p1", "session", "s1")
	s2 := dims("project", "p1", "session", "s2")
	twoRuns := []events.Event{setQuota(runs), used(t0.Add(-time.Hour), p1, actions("new_run", 1)), used(t0.Add(-time.Hour), p1, actions("new_run", 1))}
	// Until 2025-04-01: 21 days 11.5 hours.
	const toMonthEnd = 21*86400 + 11*3600 + 1800

	runDecide(t, call(p1), []decideCase{
		{
			name:  "new_run under the limit",
			given: []events.Event{setQuota(runs)},
			cmd:   Consume{ID: "run-1", Dims: p1, Amounts: actions("new_run", 1)},
			want:  []events.Event{ev("run-1", t0, p1, &events.UsageRecorded{Amounts: actions("new_run", 1), Decided: true})}, outcome: "consumed",
			statuses: []string{
				"runs action:new_run: used 1 reserved 0 remaining 1",
				"runs action:activate_workflow: used 0 reserved 0 remaining 1",
			},
		},
		{
			name:  "new_run past the limit is runs_hard_limit",
			given: twoRuns,
			cmd:   Consume{ID: "run-3", Dims: p1, Amounts: actions("new_run", 1)},
			err:   events.ErrQuotaExceeded, retryAfter: toMonthEnd, message: "resets in 21 days",
			details: map[string]any{"reason": "runs_hard_limit", "quota": "runs", "metric": "action:new_run", "used": 2, "limit": 2},
		},
		{
			name:  "another action past its limit is exceeds_limit",
			given: []events.Event{setQuota(runs), used(t0.Add(-time.Hour), p1, actions("activate_workflow", 1))},
			cmd:   Consume{ID: "act-2", Dims: p1, Amounts: actions("activate_workflow", 1)},
			err:   events.ErrQuotaExceeded, retryAfter: toMonthEnd,
			details: map[string]any{"reason": "exceeds_limit", "metric": "action:activate_workflow"},
		},
		{
			name:  "a spent action does not refuse other actions",
			given: twoRuns,
			cmd:   Consume{ID: "act-1", Dims: p1, Amounts: actions("activate_workflow", 1)},
			want:  []events.Event{ev("act-1", t0, p1, &events.UsageRecorded{Amounts: actions("activate_workflow", 1), Decided: true})}, outcome: "consumed",
			statuses: []string{
				"runs action:new_run: used 2 reserved 0 remaining 0 warning exceeded",
				"runs action:activate_workflow: used 1 reserved 0 remaining 0 warning exceeded",
			},
		},
		{
			name:  "ai_query is counted per chat session",
			given: []events.Event{setQuota(ai), used(t0.Add(-time.Hour), s1, actions("ai_query", 1))},
			cmd:   Consume{ID: "q2", Dims: s1, Amounts: actions("ai_query", 1)},
			want:  []events.Event{ev("q2", t0, s1, &events.UsageRecorded{Amounts: actions("ai_query", 1), Decided: true})}, outcome: "consumed",
			check: call(s1), statuses: []string{"ai[s1] action:ai_query: used 2 reserved 0 remaining 0 warning exceeded"},
		},
		{
			name:  "a session past its ai_query limit is refused",
			given: []events.Event{setQuota(ai), used(t0.Add(-time.Hour), s1, actions("ai_query", 2))},
			cmd:   Consume{ID: "q3", Dims: s1, Amounts: actions("ai_query", 1)},
			err:   events.ErrQuotaExceeded, retryAfter: 41400,
			details: map[string]any{"reason": "exceeds_limit", "quota": "ai", "split": "s1", "metric": "action:ai_query"},
		},
		{
			name:  "another session has its own count",
			given: []events.Event{setQuota(ai), used(t0.Add(-time.Hour), s1, actions("ai_query", 2))},
			cmd:   Consume{ID: "q3", Dims: s2, Amounts: actions("ai_query", 1)},
			want:  []events.Event{ev("q3", t0, s2, &events.UsageRecorded{Amounts: actions("ai_query", 1), Decided: true})}, outcome: "consumed",
			check: call(s2), statuses: []string{"ai[s2] action:ai_query: used 1 reserved 0 remaining 1"},
		},
	})
}

// ---- forced resets and quota edits (folded events) ----

func TestEvolveResetsAndQuotaEdits(t *testing.T) {
	perUser := events.Quota{ID: "per-user", Split: []string{"user"}, Limits: []events.Limit{perDay(events.MetricTokens, 100)}}
	raised := daily
	raised.Limits = []events.Limit{perDay(events.MetricTokens, 200)}
	lowered := daily
	lowered.Limits = []events.Limit{perDay(events.MetricTokens, 50)}
	full := used(t0.Add(-time.Hour), alice, tokens(100))

	runDecide(t, call(alice), []decideCase{
		{
			name:  "a forced reset zeroes the counters",
			given: []events.Event{setQuota(daily), full, resetCounters("daily", "")},
			cmd:   Consume{ID: "u1", Dims: alice, Amounts: tokens(50)},
			want:  []events.Event{ev("u1", t0, alice, &events.UsageRecorded{Amounts: tokens(50), Decided: true})}, outcome: "consumed",
			statuses: []string{"daily tokens: used 50 reserved 0 remaining 50"},
		},
		{
			name:  "a forced reset of one split zeroes only its counters",
			given: []events.Event{setQuota(perUser), full, used(t0.Add(-time.Hour), bob, tokens(100)), resetCounters("per-user", "alice")},
			cmd:   Consume{ID: "u1", Dims: bob, Amounts: tokens(1)},
			err:   events.ErrQuotaExceeded, retryAfter: 41400, details: map[string]any{"split": "bob", "used": 100},
			statuses: []string{"per-user[alice] tokens: used 0 reserved 0 remaining 100"},
		},
		{
			name:  "a forced reset forgets usage, not the holds of calls in flight",
			given: []events.Event{setQuota(daily), full, created("r1", t0.Add(-time.Minute), alice, tokens(60), time.Hour), resetCounters("daily", "")},
			cmd:   Reserve{Reservation: "r2", Dims: alice, Estimate: tokens(50)},
			err:   events.ErrQuotaExceeded, retryAfter: 41400, details: map[string]any{"used": 0, "reserved": 60},
			statuses: []string{"daily tokens: used 0 reserved 60 remaining 40"},
		},
		{
			name:  "after a forced reset, what the holds leave is granted",
			given: []events.Event{setQuota(daily), full, created("r1", t0.Add(-time.Minute), alice, tokens(60), time.Hour), resetCounters("daily", "")},
			cmd:   Reserve{Reservation: "r2", Dims: alice, Estimate: tokens(40)},
			want:  []events.Event{created("r2", t0, alice, tokens(40), time.Minute)}, outcome: "created",
			statuses: []string{"daily tokens: used 0 reserved 100 remaining 0 warning exceeded"},
		},
		{
			name:  "raising a quota's limit keeps the usage counted",
			given: []events.Event{setQuota(daily), full, setQuota(raised)},
			cmd:   Consume{ID: "u1", Dims: alice, Amounts: tokens(50)},
			want:  []events.Event{ev("u1", t0, alice, &events.UsageRecorded{Amounts: tokens(50), Decided: true})}, outcome: "consumed",
			statuses: []string{"daily tokens: used 150 reserved 0 remaining 50"},
		},
		{
			name:  "lowering a quota's limit below the usage denies at once",
			given: []events.Event{setQuota(daily), used(t0.Add(-time.Hour), alice, tokens(60)), setQuota(lowered)},
			cmd:   Consume{ID: "u1", Dims: alice, Amounts: tokens(1)},
			err:   events.ErrQuotaExceeded, retryAfter: 41400, details: map[string]any{"used": 60, "limit": 50},
			statuses: []string{"daily tokens: used 60 reserved 0 remaining 0 warning exceeded"},
		},
		{
			name:  "deleting a quota stops enforcing it",
			given: []events.Event{setQuota(daily), full, deleteQuota("daily")},
			cmd:   Consume{ID: "u1", Dims: alice, Amounts: tokens(500)},
			want:  []events.Event{ev("u1", t0, alice, &events.UsageRecorded{Amounts: tokens(500), Decided: true})}, outcome: "consumed",
			statuses: []string{},
		},
		{
			name:  "a quota set again after deletion starts afresh",
			given: []events.Event{setQuota(daily), full, deleteQuota("daily"), setQuota(daily)},
			cmd:   Consume{ID: "u1", Dims: alice, Amounts: tokens(30)},
			want:  []events.Event{ev("u1", t0, alice, &events.UsageRecorded{Amounts: tokens(30), Decided: true})}, outcome: "consumed",
			statuses: []string{"daily tokens: used 30 reserved 0 remaining 70"},
		},
	})
}

// TestEvolveState: folding the events of each behaviour leaves the state the
// decider reads; unknown event types and replays of settled reservations
// change nothing.
func TestEvolveState(t *testing.T) {
	key := dims("model", "gemini")
	for _, tc := range []struct {
		name  string
		given []events.Event
		want  string // a summary of the state
	}{
		{"nothing", nil, "quotas [] reservations [] closed [] retries [] workflows []"},
		{"quota set and deleted", []events.Event{setQuota(daily), deleteQuota("daily")}, "quotas [] reservations [] closed [] retries [] workflows []"},
		{"a reservation is open until settled", []events.Event{created("r1", t0, alice, tokens(1), time.Minute)},
			"quotas [] reservations [r1] closed [] retries [] workflows []"},
		{"settled reservations are remembered with how they ended", []events.Event{
			created("r1", t0, alice, tokens(1), time.Minute), reconciled("r1", t0, tokens(1)),
			created("r2", t0, alice, tokens(1), time.Minute), released("r2", t0),
			created("r3", t0, alice, tokens(1), time.Minute), expired("r3", t0.Add(time.Minute)),
		}, "quotas [] reservations [] closed [r1=reconciled r2=released r3=expired] retries [] workflows []"},
		{"a second settlement of a settled reservation changes nothing", []events.Event{
			created("r1", t0, alice, tokens(1), time.Minute), reconciled("r1", t0, tokens(1)), ev("x", t0, nil, &events.ReservationExpired{Reservation: "r1"}),
		}, "quotas [] reservations [] closed [r1=reconciled] retries [] workflows []"},
		{"settled reservations are forgotten after a day", []events.Event{
			created("r1", t0, alice, tokens(1), time.Minute), released("r1", t0),
			created("r2", t0.Add(25*time.Hour), alice, tokens(1), time.Minute), released("r2", t0.Add(25*time.Hour)),
		}, "quotas [] reservations [] closed [r2=released] retries [] workflows []"},
		{"retry signals stand until cleared", []events.Event{signalled("s1", t0, key, time.Minute), signalled("s2", t0, alice, time.Minute), ev("c1", t0, key, &events.RetryCleared{})},
			"quotas [] reservations [] closed [] retries [user=alice] workflows []"},
		{"passed retry signals are dropped by a later signal", []events.Event{signalled("s1", t0, key, time.Minute), signalled("s2", t0.Add(2*time.Minute), alice, time.Minute)},
			"quotas [] reservations [] closed [] retries [user=alice] workflows []"},
		{"workflows count their steps until ended", []events.Event{
			begun("w1", t0, nil), stepped("w1", 1, t0, nil), stepped("w1", 2, t0, nil), begun("w2", t0, nil), ended("w2", t0, nil),
		}, "quotas [] reservations [] closed [] retries [] workflows [w1=2]"},
		{"an unknown event type is ignored", []events.Event{setQuota(daily), {ID: "future", Type: "usage.teleported.v9", Tenant: tenant, Time: t0}},
			"quotas [daily] reservations [] closed [] retries [] workflows []"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &world{t: projections.NewTenant(tenant), v: newMemView()}
			for i := range tc.given {
				if tc.given[i].ID == "" {
					tc.given[i].ID = fmt.Sprintf("given-%d", i+1)
				}
			}
			w.fold(tc.given...)
			if got := summary(w); got != tc.want {
				t.Errorf("state %s\n     want %s", got, tc.want)
			}
		})
	}
}

func summary(w *world) string {
	t := w.t
	var res, closed, retries, wfs []string
	for id := range t.Reservations {
		res = append(res, id)
	}
	for id, c := range w.v.settled {
		closed = append(closed, id+"="+c.Outcome)
	}
	for k := range t.Retries {
		retries = append(retries, k)
	}
	for id, w := range t.Workflows {
		wfs = append(wfs, fmt.Sprintf("%s=%d", id, w.Steps))
	}
	return fmt.Sprintf("quotas %v reservations %v closed %v retries %v workflows %v", t.QuotaIDs(), sorted(res), sorted(closed), sorted(retries), sorted(wfs))
}

func sorted(s []string) []string {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	if s == nil {
		return []string{}
	}
	return s
}

// ---- a group of commands decided in sequence ----

// TestDecideSequenceNeverGrantsPastALimit decides commands one after the
// other on one state, folding each decision's events before deciding the
// next as the decider does for a group: a hard limit is never passed, and
// when demand exceeds it the grants reach it exactly.
func TestDecideSequenceNeverGrantsPastALimit(t *testing.T) {
	max37 := events.Quota{ID: "max37", Limits: []events.Limit{perDay(events.MetricTokens, 37)}}
	all50 := events.Quota{ID: "all50", Limits: []events.Limit{perDay(events.MetricTokens, 50)}}
	alice37 := events.Quota{ID: "alice37", Scope: map[string]string{"user": "alice"}, Limits: []events.Limit{perDay(events.MetricTokens, 37)}}
	three := events.Quota{ID: "three", Limits: []events.Limit{permits(3)}}
	reserves := func(n int, d events.Dimensions) []Command {
		var cmds []Command
		for i := range n {
			cmds = append(cmds, Reserve{Reservation: fmt.Sprintf("r%d", i), Dims: d, Estimate: tokens(1)})
		}
		return cmds
	}
	consumes := func(n int) []Command {
		var cmds []Command
		for i := range n {
			cmds = append(cmds, Consume{ID: fmt.Sprintf("u%d", i), Dims: alice, Amounts: tokens(1)})
		}
		return cmds
	}
	for _, tc := range []struct {
		name     string
		quotas   []events.Quota
		cmds     []Command
		want     map[string]int // outcome or error code -> count
		statuses []string
	}{
		{
			name: "100 reserves of 1 against max 37", quotas: []events.Quota{max37}, cmds: reserves(100, alice),
			want:     map[string]int{"created": 37, "quota_exceeded": 63},
			statuses: []string{"max37 tokens: used 0 reserved 37 remaining 0 warning exceeded"},
		},
		{
			name: "100 consumes of 1 against max 37", quotas: []events.Quota{max37}, cmds: consumes(100),
			want:     map[string]int{"consumed": 37, "quota_exceeded": 63},
			statuses: []string{"max37 tokens: used 37 reserved 0 remaining 0 warning exceeded"},
		},
		{
			name: "100 reserves against two overlapping quotas", quotas: []events.Quota{all50, alice37}, cmds: reserves(100, alice),
			want: map[string]int{"created": 37, "quota_exceeded": 63},
			statuses: []string{
				"alice37 tokens: used 0 reserved 37 remaining 0 warning exceeded",
				"all50 tokens: used 0 reserved 37 remaining 13",
			},
		},
		{
			name: "retries of the same reservation hold once", quotas: []events.Quota{max37},
			cmds:     append(reserves(10, alice), reserves(10, alice)...),
			want:     map[string]int{"created": 10, "exists": 10},
			statuses: []string{"max37 tokens: used 0 reserved 10 remaining 27"},
		},
		{
			name: "permits: 10 reserves against 3, then releases free them", quotas: []events.Quota{three},
			cmds: append(append(reserves(10, alice), Release{Reservation: "r0"}, Release{Reservation: "r1"}),
				Reserve{Reservation: "x1", Dims: alice}, Reserve{Reservation: "x2", Dims: alice}, Reserve{Reservation: "x3", Dims: alice}),
			want:     map[string]int{"created": 5, "quota_exceeded": 8, "released": 2},
			statuses: []string{"three concurrent: used 0 reserved 3 remaining 0 warning exceeded"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var given []events.Event
			for _, q := range tc.quotas {
				given = append(given, setQuota(q))
			}
			w := newWorld(t, given...)
			got := map[string]int{}
			newID := idGen()
			for _, cmd := range tc.cmds {
				d, err := decideAndFold(w, cmd, t0, newID)
				if err != nil {
					got[string(events.AsError(err).Code)]++
					continue
				}
				got[d.Outcome]++
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("answers %v, want %v", got, tc.want)
			}
			if st := w.statuses(call(alice), t0); !reflect.DeepEqual(st, tc.statuses) {
				t.Errorf("statuses %q, want %q", st, tc.statuses)
			}
		})
	}
}

// TestDecideSequenceRandom decides random reserves, consumes, reconciles
// (never above the estimate) and releases in sequence against two overlapping
// hard quotas, and checks after every command that no limit is passed and
// that every refusal was justified: the request did not fit.
func TestDecideSequenceRandom(t *testing.T) {
	quotas := []events.Quota{
		{ID: "all", Limits: []events.Limit{perDay(events.MetricTokens, 120)}},
		{ID: "alice", Scope: map[string]string{"user": "alice"}, Limits: []events.Limit{perDay(events.MetricTokens, 70), permits(4)}},
	}
	users := []events.Dimensions{alice, bob}
	for seed := uint64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewPCG(seed, 0))
		w := newWorld(t, setQuota(quotas[0]), setQuota(quotas[1]))
		newID := idGen()
		var open []string
		now := t0
		for i := range 300 {
			now = now.Add(time.Second)
			d := users[rng.IntN(len(users))]
			var cmd Command
			var req events.Amounts
			permit := false
			switch k := rng.IntN(10); {
			case k < 4:
				req = tokens(int64(1 + rng.IntN(8)))
				permit = true
				cmd = Reserve{Reservation: fmt.Sprintf("r%d", i), Dims: d, Estimate: req, TTL: time.Hour}
			case k < 6:
				req = tokens(int64(1 + rng.IntN(5)))
				cmd = Consume{ID: fmt.Sprintf("u%d", i), Dims: d, Amounts: req}
			case len(open) > 0:
				j := rng.IntN(len(open))
				id := open[j]
				open = append(open[:j], open[j+1:]...)
				if k < 8 {
					est := w.t.Reservations[id].Estimate.Tokens
					cmd = Reconcile{Reservation: id, Actual: tokens(rng.Int64N(est + 1))}
				} else {
					cmd = Release{Reservation: id}
				}
			default:
				continue
			}
			before := projections.Statuses(w.t, w.v, projections.Call{Dims: d, Request: req, Permit: permit}, now)
			dec, err := decideAndFold(w, cmd, now, newID)
			switch {
			case err == nil:
				if dec.Outcome == "created" {
					open = append(open, cmd.(Reserve).Reservation)
				}
			case errors.Is(err, events.ErrQuotaExceeded):
				justified := false
				for _, st := range before {
					held := st.Used + st.Reserved
					if held+st.Requested > st.Limit.Max || (st.Requested == 0 && held >= st.Limit.Max) {
						justified = true
					}
				}
				if !justified {
					t.Fatalf("seed %d, command %d %+v: refused though it fit: %v", seed, i, cmd, err)
				}
			default:
				t.Fatalf("seed %d, command %d %+v: %v", seed, i, cmd, err)
			}
			for _, u := range users {
				for _, st := range projections.Statuses(w.t, w.v, call(u), now) {
					if st.Used+st.Reserved > st.Limit.Max {
						t.Fatalf("seed %d, after command %d %+v: %s %s holds %d+%d of %d", seed, i, cmd, st.Quota, st.Limit.Metric, st.Used, st.Reserved, st.Limit.Max)
					}
				}
			}
		}
	}
}
