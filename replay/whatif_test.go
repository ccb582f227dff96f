package replay_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/replay"
	rt "github.com/ledgerworks/ledger/replay/replaytest"
)

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
//     denied; e4 asks 50 -> 950: allowed. ben's reservation e5 holds 1200
//     -> denied, so its reconciliation e6 settles nothing; e7 -> 300. Next
//     day ana e16 -> 600, e17 -> 900 (warning again: x2); e19 corrects the
//     denied e3 and is left out; e20 -> 960: allowed. A workflow that begins
//     asks for no tokens: at 950 of 1000 ana may begin w1 (e8).
//   - wf (1 workflow/day, 2 steps): w1 begins (e8, 100%: warning), steps
//     e9, e10 allowed, e11 and e12 denied; w2 (e13) denied, so its step e14
//     is nobody's; next day w3 (e18) allowed (warning x2).
//   - soft-req (2 requests/hour per user, soft, warn 50%): never denies;
//     ana crosses 50% with e1, again with e16 and e20 (x3); ben with e7.
//
// Denied calls still count: ana is at 1100 after e3, so e4 is denied too;
// ben's reservation holds 1200 (ben warned by e5) and is reconciled at 1100,
// so e7 is denied; ana's tokens are full (1150 of 1000), and a full limit
// refuses even a call that asks for none of it, so w1 (e8) is denied by
// tokens-day, as is w2 (e13, ben at 1400), which wf denies too; w1's third
// step counts, so e12 is denied at step 4; w2 begins (denied, counted), so
// its step e14 is allowed; the correction e19 counts, putting ana at 950 on
// day two, so e20 (1010) is denied.
func TestWhatIf(t *testing.T) {
	ctx := rt.Ctx(t, 60*time.Second)
	_, js := rt.Stream(t)
	rt.AppendAll(t, js, rt.WhatIfFixture())
	src := rt.Source(t, js)
	o := replay.WhatIfOptions{From: rt.TS("2026-02-01T06:00:00Z"), To: rt.TS("2026-02-03T00:00:00Z")}

	rep, err := replay.WhatIf(ctx, src, rt.WhatIfProposal(), o)
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
	rep, err = replay.WhatIf(ctx, src, rt.WhatIfProposal(), o)
	if err != nil {
		t.Fatal(err)
	}
	want = map[string][]string{
		"soft-req":   {"warn ana by e1 x3", "warn ben by e5 x1"},
		"tokens-day": {"deny e3", "deny e4", "deny e5", "deny e7", "deny e8", "deny e13", "deny e20", "warn ana by e2 x2", "warn ben by e5 x1"},
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
