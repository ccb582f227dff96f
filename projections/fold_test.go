package projections

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/ledgerworks/ledger/events"
)

var day = calendarW(events.UnitDay, "")

// TestGroupQuotaPerUserAndModel: seed 001's group quota applies to each user
// of the group (Event.Groups with scope {"group": ...}), per model.
func TestGroupQuotaPerUserAndModel(t *testing.T) {
	f := newFixture(t)
	t0 := at(t, "2024-06-14T12:00:00Z")
	f.setQuota(t0, events.Quota{
		ID: "staff-llm", Scope: map[string]string{"group": "staff"}, Split: []string{"user", "model"},
		Limits: []events.Limit{limitOf(events.MetricTokens, 1000, day), limitOf(events.MetricRequests, 5, day)},
	})
	f.setQuota(t0, events.Quota{ID: "gpt-all", Scope: map[string]string{"model": "gpt"}, Limits: []events.Limit{limitOf(events.MetricTokens, 10000, day)}})

	staff, eng := []string{"eng", "staff"}, []string{"eng"}
	f.use(t0.Add(1*time.Minute), dims("user", "alice", "model", "gpt"), staff, events.Amounts{Tokens: 300, Requests: 1})
	f.use(t0.Add(2*time.Minute), dims("user", "alice", "model", "claude"), staff, events.Amounts{Tokens: 200, Requests: 1})
	f.use(t0.Add(3*time.Minute), dims("user", "bob", "model", "gpt"), []string{"staff"}, events.Amounts{Tokens: 500, Requests: 1})
	d := f.apply(t0.Add(4*time.Minute), dims("user", "carol", "model", "claude"), eng, &events.UsageRecorded{Amounts: events.Amounts{Tokens: 999, Requests: 1}})
	if len(d.Counters) != 0 {
		t.Errorf("carol is in no quota's scope, but counters changed: %v", d.Counters)
	}
	f.use(t0.Add(5*time.Minute), dims("user", "carol", "model", "gpt"), eng, events.Amounts{Tokens: 50, Requests: 1})
	f.use(t0.Add(6*time.Minute), dims("user", "alice", "model", "gpt"), staff, events.Amounts{InputTokens: 60, OutputTokens: 40, Requests: 1})

	now := t0.Add(10 * time.Minute)
	for _, tc := range []struct {
		user, model string
		groups      []string
		split       string
		tokens      int64
		requests    int64
	}{
		{"alice", "gpt", staff, "alice/gpt", 400, 2},
		{"alice", "claude", staff, "alice/claude", 200, 1},
		{"bob", "gpt", []string{"staff"}, "bob/gpt", 500, 1},
		{"dave", "gpt", []string{"staff"}, "dave/gpt", 0, 0},
	} {
		d := dims("user", tc.user, "model", tc.model)
		tok := f.status(now, d, tc.groups, events.Amounts{}, "staff-llm", 0)
		req := f.status(now, d, tc.groups, events.Amounts{}, "staff-llm", 1)
		if tok.Split != tc.split || tok.Used != tc.tokens || req.Used != tc.requests {
			t.Errorf("%s/%s: split %q tokens %d requests %d, want %q %d %d", tc.user, tc.model, tok.Split, tok.Used, req.Used, tc.split, tc.tokens, tc.requests)
		}
	}
	// Not in the group: the group quota does not apply at all.
	for _, st := range f.statuses(now, dims("user", "carol", "model", "claude"), eng, events.Amounts{}) {
		t.Errorf("carol/claude sees a status of %s", st.Quota)
	}
	// The model quota is not split: everyone's gpt usage counts.
	if got := f.used(now, dims("user", "erin", "model", "gpt"), nil, "gpt-all", 0); got != 300+500+50+100 {
		t.Errorf("gpt-all used %d, want %d", got, 300+500+50+100)
	}
	// Statuses come in quota ID order.
	sts := f.statuses(now, dims("user", "alice", "model", "gpt"), staff, events.Amounts{})
	var got []string
	for _, st := range sts {
		got = append(got, st.Quota)
	}
	if strings.Join(got, ",") != "gpt-all,staff-llm,staff-llm" {
		t.Errorf("statuses in order %v", got)
	}
	if tot := f.totals[TotalKey{"acme", events.MetricTokens}]; tot != 300+200+500+999+50+100 {
		t.Errorf("total tokens %d", tot)
	}
}

// TestOperationCosts: seed 003's per-operation multipliers apply to tokens,
// in what is counted and in what a check asks for.
func TestOperationCosts(t *testing.T) {
	costs := map[string]int64{"query": 1, "embedding": 5, "vector_search": 10, "write": 2, "transaction": 3}
	for _, tc := range []struct {
		op     string
		amount events.Amounts
		tokens int64 // counted against the tokens limit
		input  int64 // counted against the input_tokens limit: never multiplied
	}{
		{"query", events.Amounts{Tokens: 100}, 100, 0},
		{"embedding", events.Amounts{Tokens: 100}, 500, 0},
		{"vector_search", events.Amounts{Tokens: 100}, 1000, 0},
		{"write", events.Amounts{Tokens: 100}, 200, 0},
		{"transaction", events.Amounts{Tokens: 100}, 300, 0},
		{"delete", events.Amounts{Tokens: 100}, 100, 0}, // unknown operation: 1
		{"", events.Amounts{Tokens: 100}, 100, 0},       // no operation: 1
		{"embedding", events.Amounts{InputTokens: 30, OutputTokens: 10}, 200, 30},
		{"vector_search", events.Amounts{Requests: 7}, 0, 0},
	} {
		t.Run(tc.op, func(t *testing.T) {
			f := newFixture(t)
			t0 := at(t, "2024-06-14T12:00:00Z")
			f.setQuota(t0, events.Quota{ID: "agent-budget", Scope: map[string]string{"agent": "a1"}, Costs: costs, Limits: []events.Limit{
				limitOf(events.MetricTokens, 100000, day),
				limitOf(events.MetricInputTokens, 100000, day),
				limitOf(events.MetricRequests, 100, day),
			}})
			d := dims("agent", "a1")
			if tc.op != "" {
				d["operation"] = tc.op
			}
			f.use(t0, d, nil, tc.amount)
			now := t0.Add(time.Minute)
			if got := f.used(now, d, nil, "agent-budget", 0); got != tc.tokens {
				t.Errorf("tokens used %d, want %d", got, tc.tokens)
			}
			if got := f.used(now, d, nil, "agent-budget", 1); got != tc.input {
				t.Errorf("input tokens used %d, want %d", got, tc.input)
			}
			if got := f.used(now, d, nil, "agent-budget", 2); got != tc.amount.Requests {
				t.Errorf("requests used %d, want %d", got, tc.amount.Requests)
			}
			// A check asks for the same multiple.
			st := f.status(now, d, nil, tc.amount, "agent-budget", 0)
			if st.Requested != tc.tokens {
				t.Errorf("requested %d, want %d", st.Requested, tc.tokens)
			}
			// Totals are what was used, not what it cost.
			if got := f.totals[TotalKey{"acme", events.MetricTokens}]; got != tc.amount.TotalTokens() {
				t.Errorf("total tokens %d, want %d", got, tc.amount.TotalTokens())
			}
		})
	}
}

// TestSeveralQuotas: one call counts against every quota whose scope it
// matches, each with its own windows.
func TestSeveralQuotas(t *testing.T) {
	f := newFixture(t)
	t0 := at(t, "2024-06-14T12:00:00Z")
	f.setQuota(t0, events.Quota{ID: "a-project", Scope: map[string]string{"project": "p1"}, Limits: []events.Limit{limitOf(events.MetricTokens, 1000, day)}})
	f.setQuota(t0, events.Quota{ID: "b-tenant", Limits: []events.Limit{limitOf(events.MetricTokens, 5000, slidingW(3600)), limitOf(events.MetricCost, 900, calendarW(events.UnitMonth, "Europe/Berlin"))}})
	f.setQuota(t0, events.Quota{ID: "c-model", Scope: map[string]string{"model": "m1"}, Limits: []events.Limit{limitOf(events.MetricRequests, 5, rollingW(600))}})
	f.setQuota(t0, events.Quota{ID: "d-other", Scope: map[string]string{"project": "p2"}, Limits: []events.Limit{limitOf(events.MetricTokens, 1, day)}})
	call := dims("project", "p1", "model", "m1")
	f.use(t0.Add(time.Minute), call, nil, events.Amounts{Tokens: 100, Requests: 1, Cost: 250})
	f.use(t0.Add(2*time.Minute), call, nil, events.Amounts{Tokens: 10, Requests: 1, Cost: 25})

	sts := f.statuses(t0.Add(3*time.Minute), call, nil, events.Amounts{Tokens: 5})
	want := []struct {
		quota string
		used  int64
		req   int64
	}{{"a-project", 110, 5}, {"b-tenant", 110, 5}, {"b-tenant", 275, 0}, {"c-model", 2, 0}}
	if len(sts) != len(want) {
		t.Fatalf("%d statuses, want %d: %+v", len(sts), len(want), sts)
	}
	for i, w := range want {
		if sts[i].Quota != w.quota || sts[i].Used != w.used || sts[i].Requested != w.req {
			t.Errorf("status %d: %s used %d requested %d, want %s %d %d", i, sts[i].Quota, sts[i].Used, sts[i].Requested, w.quota, w.used, w.req)
		}
	}
}

// TestQuotaEdit: replacing a quota keeps what it counted under the same
// limit (metric and window); a changed window starts other counters.
func TestQuotaEdit(t *testing.T) {
	f := newFixture(t)
	t0 := at(t, "2024-06-14T12:00:00Z")
	q := events.Quota{ID: "q", Limits: []events.Limit{limitOf(events.MetricTokens, 100, day)}}
	f.setQuota(t0, q)
	f.use(t0.Add(time.Minute), nil, nil, events.Amounts{Tokens: 60})
	now := t0.Add(2 * time.Minute)

	q.Limits[0].Max = 50
	f.setQuota(t0.Add(90*time.Second), q)
	st := f.status(now, nil, nil, events.Amounts{}, "q", 0)
	if st.Used != 60 || st.Remaining != 0 || !st.Exceeded || st.Limit.Max != 50 {
		t.Errorf("lowered to 50: %+v", st)
	}
	if !f.ten.Quotas["q"].Since.Equal(t0) {
		t.Errorf("since moved to %s", f.ten.Quotas["q"].Since)
	}
	q.Limits[0].Max = 200
	f.setQuota(now, q)
	if st := f.status(now, nil, nil, events.Amounts{}, "q", 0); st.Used != 60 || st.Remaining != 140 || st.Exceeded {
		t.Errorf("raised to 200: %+v", st)
	}
	q.Limits[0].Window = calendarW(events.UnitHour, "")
	f.setQuota(now, q)
	if got := f.used(now, nil, nil, "q", 0); got != 0 {
		t.Errorf("hourly window: used %d, want 0 (new counters)", got)
	}
	q.Limits[0].Window = day
	f.setQuota(now, q)
	if got := f.used(now, nil, nil, "q", 0); got != 60 {
		t.Errorf("back to daily: used %d, want 60", got)
	}
}

// TestQuotaDelete: a deleted quota has no status and counts nothing; created
// again it starts from zero, rolling windows included.
func TestQuotaDelete(t *testing.T) {
	f := newFixture(t)
	t0 := at(t, "2024-06-14T12:00:00Z")
	q := events.Quota{ID: "q", Limits: []events.Limit{limitOf(events.MetricTokens, 100, day), limitOf(events.MetricRequests, 10, rollingW(3600))}}
	f.setQuota(t0, q)
	f.use(t0.Add(time.Minute), nil, nil, events.Amounts{Tokens: 60, Requests: 1})

	f.apply(t0.Add(2*time.Minute), nil, nil, &events.QuotaDeleted{Quota: "q"})
	if sts := f.statuses(t0.Add(3*time.Minute), nil, nil, events.Amounts{}); len(sts) != 0 {
		t.Errorf("deleted quota still has statuses: %+v", sts)
	}
	if d := f.apply(t0.Add(4*time.Minute), nil, nil, &events.UsageRecorded{Amounts: events.Amounts{Tokens: 5, Requests: 1}}); len(d.Counters) != 0 {
		t.Errorf("usage after delete changed counters: %v", d.Counters)
	}
	// Deleting an unknown quota changes nothing.
	before := snapshot(t, f.ten)
	f.apply(t0.Add(5*time.Minute), nil, nil, &events.QuotaDeleted{Quota: "nope"})
	if !bytes.Equal(before, snapshot(t, f.ten)) {
		t.Error("deleting an unknown quota changed the state")
	}

	f.setQuota(t0.Add(10*time.Minute), q)
	now := t0.Add(11 * time.Minute)
	for i := range q.Limits {
		if st := f.status(now, nil, nil, events.Amounts{}, "q", i); st.Used != 0 || !st.WindowStart.IsZero() && q.Limits[i].Window.Kind == events.Rolling {
			t.Errorf("limit %d after re-create: used %d, window %s", i, st.Used, st.WindowStart)
		}
	}
	if !f.ten.Quotas["q"].Since.Equal(t0.Add(10 * time.Minute)) {
		t.Errorf("re-created quota since %s", f.ten.Quotas["q"].Since)
	}
	f.use(t0.Add(20*time.Minute), nil, nil, events.Amounts{Tokens: 7, Requests: 1})
	now = t0.Add(21 * time.Minute)
	if got := f.used(now, nil, nil, "q", 0); got != 7 {
		t.Errorf("daily after re-create: used %d, want 7", got)
	}
	st := f.status(now, nil, nil, events.Amounts{}, "q", 1)
	if st.Used != 1 || !st.WindowStart.Equal(t0.Add(20*time.Minute)) || !st.ResetsAt.Equal(t0.Add(80*time.Minute)) {
		t.Errorf("rolling after re-create: used %d, window %s, resets %s; want 1, %s, %s", st.Used, st.WindowStart, st.ResetsAt, t0.Add(20*time.Minute), t0.Add(80*time.Minute))
	}
}

// TestCounterReset: a forced reset zeroes a quota's counters, all of them or
// one split's, and its rolling windows; later usage counts afresh.
func TestCounterReset(t *testing.T) {
	t0 := at(t, "2024-06-14T12:00:00Z")
	setup := func(t *testing.T) *fixture {
		f := newFixture(t)
		f.setQuota(t0, events.Quota{ID: "q", Split: []string{"user"}, Limits: []events.Limit{limitOf(events.MetricTokens, 1000, day), limitOf(events.MetricRequests, 10, rollingW(3600))}})
		f.setQuota(t0, events.Quota{ID: "other", Limits: []events.Limit{limitOf(events.MetricTokens, 1000, day)}})
		for _, u := range []string{"alice", "alice2", "bob"} {
			f.use(t0.Add(time.Minute), dims("user", u), nil, events.Amounts{Tokens: 100, Requests: 1})
		}
		return f
	}
	now := t0.Add(5 * time.Minute)
	check := func(t *testing.T, f *fixture, user string, tokens, requests int64) {
		t.Helper()
		if got := f.used(now, dims("user", user), nil, "q", 0); got != tokens {
			t.Errorf("%s tokens %d, want %d", user, got, tokens)
		}
		if got := f.used(now, dims("user", user), nil, "q", 1); got != requests {
			t.Errorf("%s requests %d, want %d", user, got, requests)
		}
	}
	t.Run("one split", func(t *testing.T) {
		f := setup(t)
		f.apply(t0.Add(2*time.Minute), nil, nil, &events.CounterReset{Quota: "q", Split: "alice"})
		check(t, f, "alice", 0, 0)
		check(t, f, "alice2", 100, 1)
		check(t, f, "bob", 100, 1)
		f.use(t0.Add(3*time.Minute), dims("user", "alice"), nil, events.Amounts{Tokens: 10, Requests: 1})
		check(t, f, "alice", 10, 1)
		if st := f.status(now, dims("user", "alice"), nil, events.Amounts{}, "q", 1); !st.WindowStart.Equal(t0.Add(3 * time.Minute)) {
			t.Errorf("alice's rolling window starts %s, want at her first use after the reset", st.WindowStart)
		}
		if st := f.status(now, dims("user", "bob"), nil, events.Amounts{}, "q", 1); !st.WindowStart.Equal(t0.Add(time.Minute)) {
			t.Errorf("bob's rolling window starts %s", st.WindowStart)
		}
		// Resetting alice again, then the whole quota: epochs never repeat.
		f.apply(t0.Add(3*time.Minute), nil, nil, &events.CounterReset{Quota: "q", Split: "alice"})
		check(t, f, "alice", 0, 0)
		f.apply(t0.Add(3*time.Minute), nil, nil, &events.CounterReset{Quota: "q"})
		check(t, f, "alice", 0, 0)
		check(t, f, "bob", 0, 0)
	})
	t.Run("open reservations keep holding", func(t *testing.T) {
		for _, reset := range []events.CounterReset{{Quota: "q", Split: "alice"}, {Quota: "q"}} {
			f := setup(t)
			f.apply(t0.Add(2*time.Minute), dims("user", "alice"), nil, &events.ReservationCreated{Reservation: "r1", Estimate: events.Amounts{Tokens: 300}, ExpiresAt: t0.Add(time.Hour)})
			f.apply(t0.Add(3*time.Minute), nil, nil, &reset)
			if st := f.status(now, dims("user", "alice"), nil, events.Amounts{}, "q", 0); st.Used != 0 || st.Reserved != 300 {
				t.Errorf("reset %+v: after the reset used %d reserved %d, want 0 and 300 (the call is still in flight)", reset, st.Used, st.Reserved)
			}
			f.apply(t0.Add(4*time.Minute), nil, nil, &events.ReservationReconciled{Reservation: "r1", Actual: events.Amounts{Tokens: 120}})
			if st := f.status(now, dims("user", "alice"), nil, events.Amounts{}, "q", 0); st.Used != 120 || st.Reserved != 0 {
				t.Errorf("reset %+v: after reconciling used %d reserved %d, want 120 and 0", reset, st.Used, st.Reserved)
			}
			for k, n := range f.c {
				if k.Reserved && n != 0 {
					t.Errorf("reset %+v: a hold of %d is left on %+v", reset, n, k)
				}
			}
		}
	})
	t.Run("whole quota", func(t *testing.T) {
		f := setup(t)
		f.apply(t0.Add(2*time.Minute), nil, nil, &events.CounterReset{Quota: "q", Reason: "support ticket"})
		for _, u := range []string{"alice", "alice2", "bob"} {
			check(t, f, u, 0, 0)
		}
		if got := f.used(now, nil, nil, "other", 0); got != 300 {
			t.Errorf("other quota used %d, want 300", got)
		}
		f.use(t0.Add(3*time.Minute), dims("user", "bob"), nil, events.Amounts{Tokens: 10, Requests: 1})
		check(t, f, "bob", 10, 1)
		check(t, f, "alice", 0, 0)
	})
}

// TestReservations: a reservation holds its estimate until it is settled;
// reconciling replaces the hold by the actual usage in the reservation's own
// window; releasing and expiring give it back; settling again does nothing.
func TestReservations(t *testing.T) {
	t0 := at(t, "2024-06-14T12:00:00Z")
	quota := events.Quota{ID: "q", Split: []string{"user"}, Costs: map[string]int64{"embedding": 5}, Limits: []events.Limit{
		limitOf(events.MetricTokens, 1000, calendarW(events.UnitDay, "America/New_York")),
		limitOf(events.MetricRequests, 10, slidingW(3600)),
	}}
	alice := dims("user", "alice")
	create := func(id string, tokens int64) events.Payload {
		return &events.ReservationCreated{Reservation: id, Estimate: events.Amounts{Tokens: tokens, Requests: 1}, ExpiresAt: t0.Add(time.Hour)}
	}
	reconcile := func(id string, tokens int64) events.Payload {
		return &events.ReservationReconciled{Reservation: id, Actual: events.Amounts{Tokens: tokens, Requests: 1}}
	}
	type step struct {
		after time.Duration
		p     events.Payload
	}
	for _, tc := range []struct {
		name             string
		steps            []step
		tokens, reserved int64 // tokens limit at t0+10m
		requests         int64
		held             int64 // requests reserved
		totalTokens      int64
	}{
		{"created", []step{{0, create("r1", 300)}}, 0, 300, 0, 1, 0},
		{"created twice with one ID", []step{{0, create("r1", 300)}, {time.Second, create("r1", 300)}}, 0, 300, 0, 1, 0},
		{"reconciled with less", []step{{0, create("r1", 300)}, {time.Minute, reconcile("r1", 250)}}, 250, 0, 1, 0, 250},
		{"reconciled with more", []step{{0, create("r1", 300)}, {time.Minute, reconcile("r1", 450)}}, 450, 0, 1, 0, 450},
		{"released", []step{{0, create("r1", 300)}, {time.Minute, &events.ReservationReleased{Reservation: "r1", Reason: "never ran"}}}, 0, 0, 0, 0, 0},
		{"expired", []step{{0, create("r1", 300)}, {time.Hour, &events.ReservationExpired{Reservation: "r1"}}}, 0, 0, 0, 0, 0},
		{"reconciled twice", []step{{0, create("r1", 300)}, {time.Minute, reconcile("r1", 250)}, {2 * time.Minute, reconcile("r1", 250)}}, 250, 0, 1, 0, 250},
		{"reconciled, then expired", []step{{0, create("r1", 300)}, {time.Minute, reconcile("r1", 250)}, {time.Hour, &events.ReservationExpired{Reservation: "r1"}}}, 250, 0, 1, 0, 250},
		{"released, then reconciled", []step{{0, create("r1", 300)}, {time.Minute, &events.ReservationReleased{Reservation: "r1"}}, {2 * time.Minute, reconcile("r1", 250)}}, 0, 0, 0, 0, 0},
		{"unknown reservation", []step{{0, reconcile("nope", 250)}, {0, &events.ReservationReleased{Reservation: "nope"}}}, 0, 0, 0, 0, 0},
		{"two open, one settled", []step{{0, create("r1", 300)}, {0, create("r2", 100)}, {time.Minute, reconcile("r2", 50)}}, 50, 300, 1, 1, 50},
		{"quota edited while open", []step{{0, create("r1", 300)}, {time.Minute, &events.QuotaSet{Quota: events.Quota{ID: "q", Split: []string{"user"}, Costs: map[string]int64{"embedding": 5}, Limits: []events.Limit{limitOf(events.MetricTokens, 2000, calendarW(events.UnitDay, "America/New_York")), limitOf(events.MetricRequests, 10, slidingW(3600))}}}}, {2 * time.Minute, reconcile("r1", 250)}}, 250, 0, 1, 0, 250},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.setQuota(t0.Add(-time.Hour), quota)
			for _, s := range tc.steps {
				f.apply(t0.Add(s.after), alice, nil, s.p)
			}
			now := t0.Add(10 * time.Minute)
			tok := f.status(now, alice, nil, events.Amounts{}, "q", 0)
			req := f.status(now, alice, nil, events.Amounts{}, "q", 1)
			if tok.Used != tc.tokens || tok.Reserved != tc.reserved || req.Used != tc.requests || req.Reserved != tc.held {
				t.Errorf("tokens used %d reserved %d, requests used %d reserved %d; want %d %d %d %d",
					tok.Used, tok.Reserved, req.Used, req.Reserved, tc.tokens, tc.reserved, tc.requests, tc.held)
			}
			if got := f.totals[TotalKey{"acme", events.MetricTokens}]; got != tc.totalTokens {
				t.Errorf("total tokens %d, want %d", got, tc.totalTokens)
			}
			if tok.Remaining != max(0, tok.Limit.Max-tc.tokens-tc.reserved) {
				t.Errorf("remaining %d", tok.Remaining)
			}
		})
	}

	t.Run("holds count in checks", func(t *testing.T) {
		f := newFixture(t)
		f.setQuota(t0.Add(-time.Hour), quota)
		f.apply(t0, alice, nil, create("r1", 300))
		f.use(t0, alice, nil, events.Amounts{Tokens: 200})
		now := t0.Add(time.Minute)
		if st := f.status(now, alice, nil, events.Amounts{Tokens: 500}, "q", 0); st.Exceeded {
			t.Errorf("200 used + 300 held + 500 asked of 1000: exceeded")
		}
		if st := f.status(now, alice, nil, events.Amounts{Tokens: 501}, "q", 0); !st.Exceeded {
			t.Errorf("200 used + 300 held + 501 asked of 1000: not exceeded")
		}
		// Another user's split is untouched.
		if st := f.status(now, dims("user", "bob"), nil, events.Amounts{}, "q", 0); st.Used != 0 || st.Reserved != 0 {
			t.Errorf("bob sees %d used, %d reserved", st.Used, st.Reserved)
		}
	})
	t.Run("cost multiplier on the hold and the actual", func(t *testing.T) {
		f := newFixture(t)
		f.setQuota(t0.Add(-time.Hour), quota)
		emb := dims("user", "alice", "operation", "embedding")
		f.apply(t0, emb, nil, create("r1", 100))
		if st := f.status(t0.Add(time.Minute), emb, nil, events.Amounts{}, "q", 0); st.Reserved != 500 {
			t.Errorf("held %d, want 500", st.Reserved)
		}
		f.apply(t0.Add(time.Minute), emb, nil, reconcile("r1", 60))
		if st := f.status(t0.Add(time.Minute), emb, nil, events.Amounts{}, "q", 0); st.Used != 300 || st.Reserved != 0 {
			t.Errorf("used %d reserved %d, want 300 0", st.Used, st.Reserved)
		}
	})
	t.Run("reconciled in the next calendar day", func(t *testing.T) {
		// Reserved at 23:59:50 New York time, reconciled and checked after
		// midnight: the usage belongs to the day the reservation was made.
		f := newFixture(t)
		f.setQuota(t0.Add(-time.Hour), quota)
		f.apply(at(t, "2024-06-14T23:59:50-04:00"), alice, nil, create("r1", 300))
		f.apply(at(t, "2024-06-15T00:00:10-04:00"), alice, nil, reconcile("r1", 250))
		if st := f.status(at(t, "2024-06-15T00:00:20-04:00"), alice, nil, events.Amounts{}, "q", 0); st.Used != 0 || st.Reserved != 0 {
			t.Errorf("new day: used %d reserved %d, want 0 0", st.Used, st.Reserved)
		}
		if st := f.status(at(t, "2024-06-14T23:59:59-04:00"), alice, nil, events.Amounts{}, "q", 0); st.Used != 250 || st.Reserved != 0 {
			t.Errorf("old day: used %d reserved %d, want 250 0", st.Used, st.Reserved)
		}
	})
	t.Run("open reservations are state", func(t *testing.T) {
		f := newFixture(t)
		f.setQuota(t0.Add(-time.Hour), quota)
		f.apply(t0, alice, nil, create("r1", 300))
		r := f.ten.Reservations["r1"]
		if r == nil || len(r.Holds) != 2 || !r.ExpiresAt.Equal(t0.Add(time.Hour)) || r.Dims["user"] != "alice" {
			t.Fatalf("reservation state %+v", r)
		}
		f.apply(t0, alice, nil, &events.ReservationExpired{Reservation: "r1"})
		if len(f.ten.Reservations) != 0 {
			t.Errorf("settled reservation still open: %v", f.ten.Reservations)
		}
	})
}

// TestUsageCorrected: a correction adds its (possibly negative) delta.
func TestUsageCorrected(t *testing.T) {
	f := newFixture(t)
	t0 := at(t, "2024-06-14T12:00:00Z")
	f.setQuota(t0, events.Quota{ID: "q", Limits: []events.Limit{limitOf(events.MetricTokens, 1000, day), limitOf(events.MetricCost, 1000, day)}})
	f.use(t0, nil, nil, events.Amounts{Tokens: 100, Cost: 40})
	f.apply(t0.Add(time.Minute), nil, nil, &events.UsageCorrected{Corrects: "ev-2", Delta: events.Amounts{Tokens: -30, Cost: 5}, Reason: "double count"})
	now := t0.Add(2 * time.Minute)
	if got := f.used(now, nil, nil, "q", 0); got != 70 {
		t.Errorf("tokens %d, want 70", got)
	}
	if got := f.used(now, nil, nil, "q", 1); got != 45 {
		t.Errorf("cost %d, want 45", got)
	}
	if got := f.totals[TotalKey{"acme", events.MetricTokens}]; got != 70 {
		t.Errorf("total tokens %d, want 70", got)
	}
}

// TestWorkflows: a begun workflow counts one against the workflows metric;
// steps and ends are tracked in state.
func TestWorkflows(t *testing.T) {
	f := newFixture(t)
	t0 := at(t, "2024-06-14T12:00:00Z")
	f.setQuota(t0, events.Quota{ID: "wf", Scope: map[string]string{"agent": "a1"}, MaxSteps: 5, Limits: []events.Limit{limitOf(events.MetricWorkflows, 2, day)}})
	a1, a2 := dims("agent", "a1"), dims("agent", "a2")
	f.apply(t0, a1, nil, &events.WorkflowBegun{Workflow: "w1"})
	st := f.status(t0, a1, nil, events.Amounts{}, "wf", 0)
	if st.Used != 1 || st.Exceeded {
		t.Errorf("after one: %+v", st)
	}
	f.apply(t0.Add(time.Second), a1, nil, &events.WorkflowBegun{Workflow: "w2"})
	f.apply(t0.Add(time.Second), a2, nil, &events.WorkflowBegun{Workflow: "w3"}) // out of scope
	f.use(t0.Add(time.Second), a1, nil, events.Amounts{Tokens: 100, Requests: 1})
	st = f.status(t0.Add(2*time.Second), a1, nil, events.Amounts{}, "wf", 0)
	if st.Used != 2 || !st.Exceeded || st.Remaining != 0 {
		t.Errorf("after two of two: %+v", st)
	}
	for i := int64(1); i <= 3; i++ {
		f.apply(t0.Add(3*time.Second), a1, nil, &events.WorkflowStepped{Workflow: "w1", Step: i})
	}
	f.apply(t0.Add(3*time.Second), a1, nil, &events.WorkflowStepped{Workflow: "unknown", Step: 1})
	if w := f.ten.Workflows["w1"]; w == nil || w.Steps != 3 || !w.Begun.Equal(t0) {
		t.Errorf("w1 state %+v", w)
	}
	if _, ok := f.ten.Workflows["unknown"]; ok {
		t.Error("a step of an unknown workflow created it")
	}
	f.apply(t0.Add(4*time.Second), a1, nil, &events.WorkflowEnded{Workflow: "w1", Outcome: "ok"})
	if _, ok := f.ten.Workflows["w1"]; ok || len(f.ten.Workflows) != 2 {
		t.Errorf("workflows after end: %v", f.ten.Workflows)
	}
	// Ending does not give back the workflow: the metric counts begun ones.
	if got := f.used(t0.Add(5*time.Second), a1, nil, "wf", 0); got != 2 {
		t.Errorf("used %d after end, want 2", got)
	}
	// Next day: a fresh count.
	if got := f.used(t0.Add(24*time.Hour), a1, nil, "wf", 0); got != 0 {
		t.Errorf("next day used %d", got)
	}
}

// TestRetrySignals: a 429's retry signal stands for its key until cleared or
// passed.
func TestRetrySignals(t *testing.T) {
	f := newFixture(t)
	t0 := at(t, "2024-06-14T12:00:00Z")
	k1 := dims("model", "gemini", "location", "eu", "metric", "input_tokens")
	k2 := dims("model", "gemini", "location", "us", "metric", "input_tokens")
	f.apply(t0, k1, nil, &events.RetrySignalled{RetryUntil: t0.Add(30 * time.Second), RetryDelay: "30s", QuotaMetric: "m", QuotaID: "PerMinute", QuotaDimensions: map[string]string{"location": "eu"}})
	r, ok := f.ten.Retries[RetryKey(k1)]
	if !ok || !r.Signal.RetryUntil.Equal(t0.Add(30*time.Second)) || r.Signal.QuotaID != "PerMinute" || !r.At.Equal(t0) {
		t.Fatalf("retry state %+v", f.ten.Retries)
	}
	if RetryKey(k1) != "location=eu,metric=input_tokens,model=gemini" {
		t.Errorf("retry key %q", RetryKey(k1))
	}
	// A later signal on another key drops the one that has passed.
	f.apply(t0.Add(time.Minute), k2, nil, &events.RetrySignalled{RetryUntil: t0.Add(2 * time.Minute)})
	if _, ok := f.ten.Retries[RetryKey(k1)]; ok || len(f.ten.Retries) != 1 {
		t.Errorf("retries %v", f.ten.Retries)
	}
	// Cleared on another key: nothing; on its key: gone.
	f.apply(t0.Add(70*time.Second), k1, nil, &events.RetryCleared{})
	if len(f.ten.Retries) != 1 {
		t.Errorf("clearing another key removed a signal")
	}
	f.apply(t0.Add(70*time.Second), k2, nil, &events.RetryCleared{})
	if len(f.ten.Retries) != 0 {
		t.Errorf("retries after clear: %v", f.ten.Retries)
	}
}

func TestPlanSet(t *testing.T) {
	f := newFixture(t)
	t0 := at(t, "2024-06-14T12:00:00Z")
	f.apply(t0, nil, nil, &events.PlanSet{RunTimeoutMs: 60000, RetentionDays: []int{7, 30}})
	f.apply(t0, nil, nil, &events.PlanSet{Project: "p1", RunTimeoutMs: 1000, SaveDataclips: true})
	f.apply(t0.Add(time.Second), nil, nil, &events.PlanSet{Project: "p1", RunTimeoutMs: 2000, RetentionMessage: "kept 30 days"})
	if p := f.ten.Plans[""]; p.RunTimeoutMs != 60000 || len(p.RetentionDays) != 2 {
		t.Errorf("tenant plan %+v", p)
	}
	if p := f.ten.Plans["p1"]; p.RunTimeoutMs != 2000 || p.SaveDataclips || p.RetentionMessage != "kept 30 days" {
		t.Errorf("project plan %+v (a plan is replaced, not merged)", p)
	}
}

// futurePayload stands for an event type added after this code was built.
type futurePayload struct{ events.RetryCleared }

func (*futurePayload) EventType() events.Type { return "future.thing.v1" }

// TestUnknownPayloadIgnored: Evolve skips what it does not know.
func TestUnknownPayloadIgnored(t *testing.T) {
	f := newFixture(t)
	t0 := at(t, "2024-06-14T12:00:00Z")
	f.setQuota(t0, events.Quota{ID: "q", Limits: []events.Limit{limitOf(events.MetricTokens, 1000, day), limitOf(events.MetricRequests, 1000, rollingW(60))}})
	f.use(t0, nil, nil, events.Amounts{Tokens: 1, Requests: 1})
	before := snapshot(t, f.ten)
	for _, ev := range []events.Event{
		{ID: "x1", Type: "future.thing.v1", Tenant: "acme", Time: t0, Payload: &futurePayload{}},
		{ID: "x2", Type: "future.thing.v1", Tenant: "acme", Time: t0},
	} {
		d := NewDeltas()
		Evolve(f.ten, &ev, Meta{Seq: 99}, d)
		if len(d.Counters) != 0 || len(d.Totals) != 0 {
			t.Errorf("%s changed counters: %+v", ev.ID, d)
		}
	}
	if !bytes.Equal(before, snapshot(t, f.ten)) {
		t.Error("an unknown event changed the state")
	}
}

// TestLimitStatus pins the arithmetic of a status: Exceeded asks "would this
// request pass the maximum" when something is requested, and "is there room
// for anything" when not; Remaining never goes below zero.
func TestLimitStatus(t *testing.T) {
	for _, tc := range []struct {
		name                     string
		max, used, reserved, req int64
		warnPct                  int64
		remaining                int64
		warning, exceeded        bool
		percent                  float64
	}{
		{"empty", 100, 0, 0, 0, 0, 100, false, false, 0},
		{"79%: no warning", 100, 79, 0, 0, 0, 21, false, false, 79},
		{"80%: default warning", 100, 80, 0, 0, 0, 20, true, false, 80},
		{"held counts toward the warning", 100, 60, 20, 0, 0, 20, true, false, 80},
		{"warning at 50%", 100, 50, 0, 0, 50, 50, true, false, 50},
		{"49% under a 50% warning", 100, 49, 0, 0, 50, 51, false, false, 49},
		{"warning at 100%", 100, 99, 0, 0, 100, 1, false, false, 99},
		{"request fits exactly", 100, 99, 0, 1, 0, 1, true, false, 99},
		{"request one over", 100, 99, 0, 2, 0, 1, true, true, 99},
		{"request with holds", 100, 50, 30, 21, 0, 20, true, true, 80},
		{"nothing asked, room for one", 100, 99, 0, 0, 0, 1, true, false, 99},
		{"nothing asked, full", 100, 100, 0, 0, 0, 0, true, true, 100},
		{"nothing asked, full with holds", 100, 60, 40, 0, 0, 0, true, true, 100},
		{"over the maximum (usage is a fact)", 100, 150, 0, 0, 0, 0, true, true, 150},
		{"over with holds and a request", 100, 150, 20, 5, 0, 0, true, true, 170},
		{"request alone too big", 100, 0, 0, 101, 0, 100, false, true, 0},
		{"zero maximum", 0, 0, 0, 0, 0, 0, false, true, 0},
		{"zero maximum, request", 0, 0, 0, 1, 0, 0, false, true, 0},
		{"zero maximum, used", 0, 3, 0, 0, 0, 0, true, true, 100},
		{"negative corrections", 100, -10, 0, 0, 0, 110, false, false, -10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := events.Quota{ID: "q", WarnPercent: tc.warnPct}
			l := limitOf(events.MetricTokens, tc.max, day)
			st := LimitStatus{Used: tc.used, Reserved: tc.reserved, Requested: tc.req}
			fill(&st, &q, l)
			if st.Remaining != tc.remaining || st.Warning != tc.warning || st.Exceeded != tc.exceeded || st.PercentUsed != tc.percent {
				t.Errorf("remaining %d warning %v exceeded %v percent %v; want %d %v %v %v",
					st.Remaining, st.Warning, st.Exceeded, st.PercentUsed, tc.remaining, tc.warning, tc.exceeded, tc.percent)
			}
		})
	}
}

// TestStatusesThroughFold: the same semantics end to end, with a soft quota.
func TestStatusesThroughFold(t *testing.T) {
	f := newFixture(t)
	t0 := at(t, "2024-06-14T12:00:00Z")
	f.setQuota(t0, events.Quota{ID: "soft", Enforcement: events.Soft, WarnPercent: 90, Limits: []events.Limit{limitOf(events.MetricTokens, 100, day)}})
	f.setQuota(t0, events.Quota{ID: "hard", Limits: []events.Limit{limitOf(events.MetricTokens, 100, day)}})
	f.use(t0, nil, nil, events.Amounts{Tokens: 85})
	now := t0.Add(time.Minute)
	soft := f.status(now, nil, nil, events.Amounts{Tokens: 10}, "soft", 0)
	hard := f.status(now, nil, nil, events.Amounts{Tokens: 10}, "hard", 0)
	if !soft.Soft || soft.Warning || soft.Exceeded || soft.Remaining != 15 {
		t.Errorf("soft at 85 of 100 (warn 90): %+v", soft)
	}
	if hard.Soft || !hard.Warning || hard.Exceeded {
		t.Errorf("hard at 85 of 100 (warn 80): %+v", hard)
	}
	if !hard.WindowStart.Equal(at(t, "2024-06-14T00:00:00Z")) || !hard.ResetsAt.Equal(at(t, "2024-06-15T00:00:00Z")) {
		t.Errorf("window %s..%s", hard.WindowStart, hard.ResetsAt)
	}
	f.use(now, nil, nil, events.Amounts{Tokens: 30})
	for _, id := range []string{"soft", "hard"} {
		st := f.status(now, nil, nil, events.Amounts{}, id, 0)
		if st.Used != 115 || st.Remaining != 0 || !st.Exceeded || !st.Warning {
			t.Errorf("%s at 115 of 100: %+v", id, st)
		}
	}
}

// TestEvolveDeterministic: folding the same events into two fresh states
// gives the same deltas and the same encoded state, whatever map order.
func TestEvolveDeterministic(t *testing.T) {
	t0 := at(t, "2024-06-14T12:00:00Z")
	run := func() ([]byte, mapCounters) {
		f := newFixture(t)
		for i, id := range []string{"q3", "q1", "q2"} {
			f.setQuota(t0, events.Quota{ID: id, Split: []string{"user"}, Limits: []events.Limit{limitOf(events.MetricTokens, 1000, rollingW(int64(60*(i+1)))), limitOf(events.MetricRequests, 9, day)}})
		}
		for i := 0; i < 50; i++ {
			u := dims("user", "u"+strconv.Itoa(i%7))
			f.use(t0.Add(time.Duration(i)*17*time.Second), u, nil, events.Amounts{Tokens: int64(i), Requests: 1})
			if i%5 == 0 {
				f.apply(t0.Add(time.Duration(i)*17*time.Second), u, nil, &events.ReservationCreated{Reservation: "r" + strconv.Itoa(i), Estimate: events.Amounts{Tokens: 5}, ExpiresAt: t0.Add(time.Hour)})
			}
		}
		return snapshot(t, f.ten), f.c
	}
	s1, c1 := run()
	for i := 0; i < 5; i++ {
		s2, c2 := run()
		if !bytes.Equal(s1, s2) {
			t.Fatal("two folds of the same events encode different states")
		}
		if len(c1) != len(c2) {
			t.Fatalf("counters differ: %d vs %d", len(c1), len(c2))
		}
		for k, n := range c1 {
			if c2[k] != n {
				t.Fatalf("counter %+v: %d vs %d", k, n, c2[k])
			}
		}
	}
}

// snapshot encodes a tenant state canonically: equal states give equal
// bytes whatever Go's map order.
func snapshot(tb testing.TB, t *Tenant) []byte {
	tb.Helper()
	b, err := msgpack.Marshal(t)
	if err != nil {
		tb.Fatal(err)
	}
	return canonical(tb, b)
}

// canonical re-encodes msgpack with every map's keys sorted. The encoder
// sorts only map[string]string and map[string]any, and only when asked, so
// the state's other maps come out in random order; decoded into generic
// values every map is a map[string]any.
func canonical(tb testing.TB, b []byte) []byte {
	tb.Helper()
	var generic any
	if err := msgpack.Unmarshal(b, &generic); err != nil {
		tb.Fatal(err)
	}
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.SetSortMapKeys(true)
	if err := enc.Encode(generic); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// The largest valid amount times the largest valid multiplier is capped, not
// wrapped around to a negative count.
func TestCostMultiplierCannotWrap(t *testing.T) {
	q := events.Quota{ID: "q", Costs: events.Counts{"write": 1_000_000}, Limits: []events.Limit{limitOf(events.MetricTokens, 1, slidingW(60))}}
	if err := q.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		input, output int64
		want          int64
	}{
		{1, 2, 3_000_000},
		{events.MaxAmount, events.MaxAmount, maxCounted},
		{-events.MaxAmount, -events.MaxAmount, -maxCounted},
	} {
		a := events.Amounts{InputTokens: tc.input, OutputTokens: tc.output}
		if got := Amount(&q, events.MetricTokens, &a, "write"); got != tc.want {
			t.Errorf("Amount(%d+%d tokens × 1,000,000) = %d, want %d", tc.input, tc.output, got, tc.want)
		}
	}
}
