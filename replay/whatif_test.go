package replay_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/replay"
)

// whatIfFixture: one tenant, a generous recorded quota that the proposal
// replaces, and calls around the proposed limits. The expected denials and
// warnings are worked out by hand in TestWhatIf.
func whatIfFixture() []batch {
	u := func(id, at, user string, tokens int64) batch {
		return batch{"acme", events.ClassUsage, []events.Event{ev(id, "acme", at, who(user, "m"), &events.UsageRecorded{Amounts: events.Amounts{Tokens: tokens, Requests: 1}})}}
	}
	d := func(id, at string, dims events.Dimensions, p events.Payload) batch {
		return batch{"acme", events.ClassDecision, []events.Event{ev(id, "acme", at, dims, p)}}
	}
	day := events.Window{Kind: events.Calendar, Unit: events.UnitDay}
	return []batch{
		{"acme", events.ClassAdmin, []events.Event{ev("q0", "acme", "2026-02-01T00:00:00Z", nil, &events.QuotaSet{Quota: events.Quota{ID: "tokens-day", Split: []string{"user"}, Limits: []events.Limit{{Metric: events.MetricTokens, Max: 1_000_000, Window: day}}}})}},
		u("e0", "2026-02-01T05:00:00Z", "ana", 300), // before the period: fills the window, not judged
		u("e1", "2026-02-01T07:00:00Z", "ana", 400),
		u("e2", "2026-02-01T07:10:00Z", "ana", 200),
		u("e3", "2026-02-01T07:20:00Z", "ana", 200),
		u("e4", "2026-02-01T07:30:00Z", "ana", 100),
		d("e5", "2026-02-01T08:00:00Z", who("ben", "m"), &events.ReservationCreated{Reservation: "r1", Estimate: events.Amounts{Tokens: 1200, Requests: 1}, ExpiresAt: ts("2026-02-01T09:00:00Z")}),
		d("e6", "2026-02-01T08:05:00Z", nil, &events.ReservationReconciled{Reservation: "r1", Actual: events.Amounts{Tokens: 1100, Requests: 1}}),
		u("e7", "2026-02-01T08:10:00Z", "ben", 300),
		d("e8", "2026-02-01T09:00:00Z", who("ana", "m"), &events.WorkflowBegun{Workflow: "w1"}),
		d("e9", "2026-02-01T09:01:00Z", nil, &events.WorkflowStepped{Workflow: "w1", Step: 1}),
		d("e10", "2026-02-01T09:02:00Z", nil, &events.WorkflowStepped{Workflow: "w1", Step: 2}),
		d("e11", "2026-02-01T09:03:00Z", nil, &events.WorkflowStepped{Workflow: "w1", Step: 3}),
		d("e12", "2026-02-01T09:04:00Z", nil, &events.WorkflowStepped{Workflow: "w1", Step: 4}),
		d("e13", "2026-02-01T10:00:00Z", who("ben", "m"), &events.WorkflowBegun{Workflow: "w2"}),
		d("e14", "2026-02-01T10:01:00Z", nil, &events.WorkflowStepped{Workflow: "w2", Step: 1}),
		d("e15", "2026-02-01T10:02:00Z", nil, &events.WorkflowEnded{Workflow: "w1"}),
		{"acme", events.ClassAdmin, []events.Event{ev("qd", "acme", "2026-02-01T12:00:00Z", nil, &events.QuotaDeleted{Quota: "soft-req"})}}, // recorded: ignored
		u("e16", "2026-02-02T01:00:00Z", "ana", 600),
		u("e17", "2026-02-02T01:10:00Z", "ana", 300),
		d("e18", "2026-02-02T02:00:00Z", who("ana", "m"), &events.WorkflowBegun{Workflow: "w3"}),
		{"acme", events.ClassUsage, []events.Event{ev("e19", "acme", "2026-02-02T03:00:00Z", who("ana", "m"), &events.UsageCorrected{Corrects: "e3", Delta: events.Amounts{Tokens: 50}})}},
		u("e20", "2026-02-02T04:00:00Z", "ana", 60),
		u("e21", "2026-02-03T01:00:00Z", "ana", 5000), // after the period
	}
}

func whatIfProposal() replay.Proposal {
	day := events.Window{Kind: events.Calendar, Unit: events.UnitDay}
	return replay.Proposal{"acme": {
		{ID: "tokens-day", Split: []string{"user"}, Limits: []events.Limit{{Metric: events.MetricTokens, Max: 1000, Window: day}}, WarnPercent: 80},
		{ID: "wf", Limits: []events.Limit{{Metric: events.MetricWorkflows, Max: 1, Window: day}}, MaxSteps: 2},
		{ID: "soft-req", Split: []string{"user"}, Limits: []events.Limit{{Metric: events.MetricRequests, Max: 2, Window: events.Window{Kind: events.Sliding, Seconds: 3600}}}, WarnPercent: 50, Enforcement: events.Soft},
	}}
}

// outcome flattens a report: per quota, its denials (event IDs) and its
// warnings (split, first event, times).
func outcome(rep *replay.WhatIfReport) map[string][]string {
	out := map[string][]string{}
	for _, q := range rep.Quotas {
		k := q.Quota
		out[k] = []string{}
		for _, d := range q.Denials {
			out[k] = append(out[k], "deny "+d.ID)
		}
		for _, w := range q.Warnings {
			out[k] = append(out[k], fmt.Sprintf("warn %s by %s x%d", w.Split, w.FirstID, w.Times))
		}
	}
	return out
}

// The proposal's decisions, worked out by hand.
//
// Denied calls do not happen (the default):
//   - tokens-day (1000/day per user): e0 puts ana at 300 before the period;
//     e1 -> 700, e2 -> 900 (90% >= 80%: warning), e3 asks 200 -> 1100:
//     denied; e4 asks 100 -> 1000: allowed. ben's reservation e5 holds 1200
//     -> denied, so its reconciliation e6 settles nothing; e7 -> 300. Next
//     day ana e16 -> 600, e17 -> 900 (warning again: x2); e19 corrects the
//     denied e3 and is left out; e20 -> 960: allowed.
//   - wf (1 workflow/day, 2 steps): w1 begins (e8, 100%: warning), steps
//     e9, e10 allowed, e11 and e12 denied; w2 (e13) denied, so its step e14
//     is nobody's; next day w3 (e18) allowed (warning x2).
//   - soft-req (2 requests/hour per user, soft, warn 50%): never denies;
//     ana crosses 50% with e1, again with e16 and e20 (x3); ben with e7.
//
// Denied calls still count: ana is at 1100 after e3, so e4 is denied too;
// ben's reservation holds 1200 (ben warned by e5) and is reconciled at 1100,
// so e7 is denied; w1's third step counts, so e12 is denied at step 4; w2
// begins (denied, counted), so its step e14 is allowed; the correction e19
// counts, putting ana at 950 on day two, so e20 (1010) is denied.
func TestWhatIf(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	_, js := stream(t)
	appendAll(t, js, whatIfFixture())
	src := source(t, js)
	o := replay.WhatIfOptions{From: ts("2026-02-01T06:00:00Z"), To: ts("2026-02-03T00:00:00Z")}

	rep, err := replay.WhatIf(ctx, src, whatIfProposal(), o)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"soft-req":   {"warn ana by e1 x3", "warn ben by e7 x1"},
		"tokens-day": {"deny e3", "deny e5", "warn ana by e2 x2"},
		"wf":         {"deny e11", "deny e12", "deny e13", "warn  by e8 x2"},
	}
	if got := outcome(rep); !reflect.DeepEqual(got, want) {
		t.Fatalf("denied calls do not happen:\n got %v\nwant %v", got, want)
	}
	counts := map[string][4]int{}
	for _, q := range rep.Quotas {
		counts[q.Quota] = [4]int{q.DeniedCalls, q.DeniedReservations, q.DeniedWorkflows, q.DeniedSteps}
	}
	if want := map[string][4]int{"soft-req": {}, "tokens-day": {1, 1, 0, 0}, "wf": {0, 0, 1, 2}}; !reflect.DeepEqual(counts, want) {
		t.Fatalf("counts %v, want %v", counts, want)
	}
	td := rep.Quotas[1]
	if td.Quota != "tokens-day" || td.Denials[0].Split != "ana" || td.Denials[0].Hits[0] != (replay.Hit{Metric: events.MetricTokens, Window: events.Window{Kind: events.Calendar, Unit: events.UnitDay}, Max: 1000, Used: 900, Requested: 200}) {
		t.Fatalf("tokens-day first denial %+v", td.Denials[0])
	}

	o.CountDenied = true
	rep, err = replay.WhatIf(ctx, src, whatIfProposal(), o)
	if err != nil {
		t.Fatal(err)
	}
	want = map[string][]string{
		"soft-req":   {"warn ana by e1 x3", "warn ben by e5 x1"},
		"tokens-day": {"deny e3", "deny e4", "deny e5", "deny e7", "deny e20", "warn ana by e2 x2", "warn ben by e5 x1"},
		"wf":         {"deny e11", "deny e12", "deny e13", "warn  by e8 x2"},
	}
	if got := outcome(rep); !reflect.DeepEqual(got, want) {
		t.Fatalf("denied calls still count:\n got %v\nwant %v", got, want)
	}
	var text strings.Builder
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + text.String())
}

func TestProposalValidate(t *testing.T) {
	for _, in := range []string{
		`{}`,
		`{"a.b":[]}`,
		`{"acme":[{"id":"x","limits":[{"metric":"bogus","max":1,"window":{"kind":"sliding","seconds":60}}]}]}`,
		`{"acme":[{"id":"x","limits":[]},{"id":"x","limits":[]}]}`,
		`{"acme":[{"id":"x","limits":[],"unknown":1}]}`,
	} {
		if _, err := replay.ReadProposal(strings.NewReader(in)); err == nil {
			t.Errorf("%s: accepted", in)
		}
	}
}
