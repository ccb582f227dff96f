package events_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ledgerworks/ledger/events"
)

// wantInvalid checks the code and, when field is not empty, the offending
// field named in the error's details.
func wantInvalid(t *testing.T, err error, want *events.Error, field string) {
	t.Helper()
	wantCode(t, err, want)
	if field == "" {
		return
	}
	var e *events.Error
	errors.As(err, &e)
	if got, _ := e.Details["field"].(string); got != field {
		t.Fatalf("error names field %q, want %q (%v)", got, field, err)
	}
	if !strings.HasPrefix(e.Message, field+":") {
		t.Errorf("message %q does not start with the field %q", e.Message, field)
	}
}

func manyDims(n int) events.Dimensions {
	d := events.Dimensions{}
	for i := 0; i < n; i++ {
		d[fmt.Sprintf("k%d", i)] = "v"
	}
	return d
}

func manyCounts(n int) events.Counts {
	c := events.Counts{}
	for i := 0; i < n; i++ {
		c[fmt.Sprintf("a%d", i)] = 1
	}
	return c
}

// payload returns the example event's payload as its concrete type.
func payload[P events.Payload](e *events.Event) P { return e.Payload.(P) }

func TestValidateRejects(t *testing.T) {
	type mut = func(e *events.Event)
	usage := func(f func(p *events.UsageRecorded)) mut {
		return func(e *events.Event) { f(payload[*events.UsageRecorded](e)) }
	}
	for _, tc := range []struct {
		name  string
		typ   events.Type // the example to start from
		mut   mut
		want  *events.Error
		field string
	}{
		// Envelope.
		{"missing tenant", events.TypeUsageRecorded, func(e *events.Event) { e.Tenant = "" }, events.ErrInvalidArgument, "tenant"},
		{"tenant with dot", events.TypeUsageRecorded, func(e *events.Event) { e.Tenant = "acme.eu" }, events.ErrInvalidArgument, "tenant"},
		{"tenant with star", events.TypeUsageRecorded, func(e *events.Event) { e.Tenant = "acme*" }, events.ErrInvalidArgument, "tenant"},
		{"tenant with gt", events.TypeUsageRecorded, func(e *events.Event) { e.Tenant = ">" }, events.ErrInvalidArgument, "tenant"},
		{"tenant with space", events.TypeUsageRecorded, func(e *events.Event) { e.Tenant = "ac me" }, events.ErrInvalidArgument, "tenant"},
		{"tenant with tab", events.TypeUsageRecorded, func(e *events.Event) { e.Tenant = "acme\t" }, events.ErrInvalidArgument, "tenant"},
		{"tenant with slash", events.TypeUsageRecorded, func(e *events.Event) { e.Tenant = "a/b" }, events.ErrInvalidArgument, "tenant"},
		{"tenant not ascii", events.TypeUsageRecorded, func(e *events.Event) { e.Tenant = "acmé" }, events.ErrInvalidArgument, "tenant"},
		{"tenant too long", events.TypeUsageRecorded, func(e *events.Event) { e.Tenant = strings.Repeat("a", 65) }, events.ErrInvalidArgument, "tenant"},
		{"missing id", events.TypeUsageRecorded, func(e *events.Event) { e.ID = "" }, events.ErrInvalidArgument, "id"},
		{"id with space", events.TypeUsageRecorded, func(e *events.Event) { e.ID = "evt 1" }, events.ErrInvalidArgument, "id"},
		{"id with control", events.TypeUsageRecorded, func(e *events.Event) { e.ID = "evt\x00" }, events.ErrInvalidArgument, "id"},
		{"id with DEL", events.TypeUsageRecorded, func(e *events.Event) { e.ID = "evt\x7f" }, events.ErrInvalidArgument, "id"},
		{"id not ascii", events.TypeUsageRecorded, func(e *events.Event) { e.ID = "évt" }, events.ErrInvalidArgument, "id"},
		{"id too long", events.TypeUsageRecorded, func(e *events.Event) { e.ID = strings.Repeat("i", 129) }, events.ErrInvalidArgument, "id"},
		{"unknown type", events.TypeUsageRecorded, func(e *events.Event) { e.Type = "usage.recorded.v9" }, events.ErrUnknownEventType, ""},
		{"empty type", events.TypeUsageRecorded, func(e *events.Event) { e.Type = "" }, events.ErrUnknownEventType, ""},
		{"payload of another type", events.TypeUsageRecorded, func(e *events.Event) { e.Type = events.TypeUsageCorrected }, events.ErrInvalidArgument, "data"},
		{"no payload", events.TypeUsageRecorded, func(e *events.Event) { e.Payload = nil }, events.ErrInvalidArgument, "data"},
		{"zero time", events.TypeUsageRecorded, func(e *events.Event) { e.Time = time.Time{} }, events.ErrInvalidArgument, "time"},
		{"time before 2000", events.TypeUsageRecorded, func(e *events.Event) { e.Time = time.Date(1999, 12, 31, 23, 59, 59, 0, time.UTC) }, events.ErrInvalidArgument, "time"},
		{"time after 2200", events.TypeUsageRecorded, func(e *events.Event) { e.Time = time.Date(2201, 1, 1, 0, 0, 0, 0, time.UTC) }, events.ErrInvalidArgument, "time"},
		{"dim name with dot", events.TypeUsageRecorded, func(e *events.Event) { e.Dims["a.b"] = "x" }, events.ErrInvalidArgument, "dims"},
		{"dim name empty", events.TypeUsageRecorded, func(e *events.Event) { e.Dims[""] = "x" }, events.ErrInvalidArgument, "dims"},
		{"dim name too long", events.TypeUsageRecorded, func(e *events.Event) { e.Dims[strings.Repeat("k", 65)] = "x" }, events.ErrInvalidArgument, "dims"},
		{"dim value with newline", events.TypeUsageRecorded, func(e *events.Event) { e.Dims["user"] = "al\nice" }, events.ErrInvalidArgument, "dims.user"},
		{"dim value not utf8", events.TypeUsageRecorded, func(e *events.Event) { e.Dims["user"] = "al\xffice" }, events.ErrInvalidArgument, "dims.user"},
		{"dim value too long", events.TypeUsageRecorded, func(e *events.Event) { e.Dims["user"] = strings.Repeat("u", 257) }, events.ErrInvalidArgument, "dims.user"},
		{"too many dims", events.TypeUsageRecorded, func(e *events.Event) { e.Dims = manyDims(33) }, events.ErrInvalidArgument, "dims"},
		{"empty group", events.TypeUsageRecorded, func(e *events.Event) { e.Groups = []string{"research", ""} }, events.ErrInvalidArgument, "groups"},
		{"group not utf8", events.TypeUsageRecorded, func(e *events.Event) { e.Groups = []string{"\xc3"} }, events.ErrInvalidArgument, "groups"},
		{"too many groups", events.TypeUsageRecorded, func(e *events.Event) { e.Groups = make([]string, 65) }, events.ErrInvalidArgument, "groups"},

		// Amounts.
		{"negative tokens", "", usage(func(p *events.UsageRecorded) { p.Tokens = -1 }), events.ErrInvalidArgument, "tokens"},
		{"negative input tokens", "", usage(func(p *events.UsageRecorded) { p.InputTokens = -1 }), events.ErrInvalidArgument, "input_tokens"},
		{"negative output tokens", "", usage(func(p *events.UsageRecorded) { p.OutputTokens = -5 }), events.ErrInvalidArgument, "output_tokens"},
		{"negative requests", "", usage(func(p *events.UsageRecorded) { p.Requests = -1 }), events.ErrInvalidArgument, "requests"},
		{"negative cost", "", usage(func(p *events.UsageRecorded) { p.Cost = -1 }), events.ErrInvalidArgument, "cost"},
		{"tokens over max", "", usage(func(p *events.UsageRecorded) { p.Tokens = events.MaxAmount + 1 }), events.ErrInvalidArgument, "tokens"},
		{"input tokens overflow", "", usage(func(p *events.UsageRecorded) { p.InputTokens = 1 << 62 }), events.ErrInvalidArgument, "input_tokens"},
		{"requests at int64 max", "", usage(func(p *events.UsageRecorded) { p.Requests = 1<<63 - 1 }), events.ErrInvalidArgument, "requests"},
		{"cost over max", "", usage(func(p *events.UsageRecorded) { p.Cost = events.MaxAmount + 1 }), events.ErrInvalidArgument, "cost"},
		{"input plus output over max", "", usage(func(p *events.UsageRecorded) {
			p.InputTokens, p.OutputTokens = events.MaxAmount, 1
		}), events.ErrInvalidArgument, "tokens"},
		{"input plus output both at max", "", usage(func(p *events.UsageRecorded) {
			p.InputTokens, p.OutputTokens = events.MaxAmount, events.MaxAmount
		}), events.ErrInvalidArgument, "tokens"},
		{"action name empty", "", usage(func(p *events.UsageRecorded) { p.Actions[""] = 1 }), events.ErrInvalidArgument, "actions"},
		{"action name with dot", "", usage(func(p *events.UsageRecorded) { p.Actions["new.run"] = 1 }), events.ErrInvalidArgument, "actions"},
		{"action name with space", "", usage(func(p *events.UsageRecorded) { p.Actions["new run"] = 1 }), events.ErrInvalidArgument, "actions"},
		{"action name with colon", "", usage(func(p *events.UsageRecorded) { p.Actions["action:x"] = 1 }), events.ErrInvalidArgument, "actions"},
		{"action name too long", "", usage(func(p *events.UsageRecorded) { p.Actions[strings.Repeat("a", 65)] = 1 }), events.ErrInvalidArgument, "actions"},
		{"negative action", "", usage(func(p *events.UsageRecorded) { p.Actions["new_run"] = -1 }), events.ErrInvalidArgument, "actions.new_run"},
		{"action over max", "", usage(func(p *events.UsageRecorded) { p.Actions["new_run"] = events.MaxAmount + 1 }), events.ErrInvalidArgument, "actions.new_run"},
		{"too many actions", "", usage(func(p *events.UsageRecorded) { p.Actions = manyCounts(33) }), events.ErrInvalidArgument, "actions"},

		// Corrections may be negative, within the same bound.
		{"correction missing target", events.TypeUsageCorrected, func(e *events.Event) { payload[*events.UsageCorrected](e).Corrects = "" }, events.ErrInvalidArgument, "corrects"},
		{"correction under -max", events.TypeUsageCorrected, func(e *events.Event) { payload[*events.UsageCorrected](e).Delta.Cost = -events.MaxAmount - 1 }, events.ErrInvalidArgument, "delta.cost"},
		{"correction input plus output under -max", events.TypeUsageCorrected, func(e *events.Event) {
			p := payload[*events.UsageCorrected](e)
			p.Delta.InputTokens, p.Delta.OutputTokens = -events.MaxAmount, -1
		}, events.ErrInvalidArgument, "delta.tokens"},
		{"correction bad action", events.TypeUsageCorrected, func(e *events.Event) { payload[*events.UsageCorrected](e).Delta.Actions["a b"] = -1 }, events.ErrInvalidArgument, "delta.actions"},
		{"correction reason with control", events.TypeUsageCorrected, func(e *events.Event) { payload[*events.UsageCorrected](e).Reason = "oops\x1b[31m" }, events.ErrInvalidArgument, "reason"},

		// Reservations.
		{"reservation missing id", events.TypeReservationCreated, func(e *events.Event) { payload[*events.ReservationCreated](e).Reservation = "" }, events.ErrInvalidArgument, "reservation"},
		{"reservation zero expiry", events.TypeReservationCreated, func(e *events.Event) { payload[*events.ReservationCreated](e).ExpiresAt = time.Time{} }, events.ErrInvalidArgument, "expires_at"},
		{"reservation expiry beyond JSON", events.TypeReservationCreated, func(e *events.Event) {
			payload[*events.ReservationCreated](e).ExpiresAt = time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC)
		}, events.ErrInvalidArgument, "expires_at"},
		{"reservation negative estimate", events.TypeReservationCreated, func(e *events.Event) { payload[*events.ReservationCreated](e).Estimate.Tokens = -1 }, events.ErrInvalidArgument, "estimate.tokens"},
		{"reconcile over max", events.TypeReservationReconciled, func(e *events.Event) { payload[*events.ReservationReconciled](e).Actual.Cost = events.MaxAmount + 1 }, events.ErrInvalidArgument, "actual.cost"},
		{"reconcile missing id", events.TypeReservationReconciled, func(e *events.Event) { payload[*events.ReservationReconciled](e).Reservation = "" }, events.ErrInvalidArgument, "reservation"},
		{"release id with space", events.TypeReservationReleased, func(e *events.Event) { payload[*events.ReservationReleased](e).Reservation = "res 1" }, events.ErrInvalidArgument, "reservation"},
		{"release reason not utf8", events.TypeReservationReleased, func(e *events.Event) { payload[*events.ReservationReleased](e).Reason = "\xff" }, events.ErrInvalidArgument, "reason"},
		{"expiry missing id", events.TypeReservationExpired, func(e *events.Event) { payload[*events.ReservationExpired](e).Reservation = "" }, events.ErrInvalidArgument, "reservation"},

		// Retry signals.
		{"retry zero until", events.TypeRetrySignalled, func(e *events.Event) { payload[*events.RetrySignalled](e).RetryUntil = time.Time{} }, events.ErrInvalidArgument, "retry_until"},
		{"retry until year 1", events.TypeRetrySignalled, func(e *events.Event) {
			payload[*events.RetrySignalled](e).RetryUntil = time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC)
		}, events.ErrInvalidArgument, "retry_until"},
		{"retry delay too long", events.TypeRetrySignalled, func(e *events.Event) { payload[*events.RetrySignalled](e).RetryDelay = strings.Repeat("9", 65) }, events.ErrInvalidArgument, "retry_delay"},
		{"retry quota id not utf8", events.TypeRetrySignalled, func(e *events.Event) { payload[*events.RetrySignalled](e).QuotaID = "q\xfe" }, events.ErrInvalidArgument, "quota_id"},
		{"retry quota metric with control", events.TypeRetrySignalled, func(e *events.Event) { payload[*events.RetrySignalled](e).QuotaMetric = "m\x00" }, events.ErrInvalidArgument, "quota_metric"},
		{"retry too many quota dimensions", events.TypeRetrySignalled, func(e *events.Event) {
			payload[*events.RetrySignalled](e).QuotaDimensions = manyDims(33)
		}, events.ErrInvalidArgument, "quota_dimensions"},
		{"retry quota dimension not utf8", events.TypeRetrySignalled, func(e *events.Event) {
			payload[*events.RetrySignalled](e).QuotaDimensions["model"] = "\xc0\xaf"
		}, events.ErrInvalidArgument, "quota_dimensions"},

		// Workflows.
		{"workflow begun missing id", events.TypeWorkflowBegun, func(e *events.Event) { payload[*events.WorkflowBegun](e).Workflow = "" }, events.ErrInvalidArgument, "workflow"},
		{"workflow stepped missing id", events.TypeWorkflowStepped, func(e *events.Event) { payload[*events.WorkflowStepped](e).Workflow = "" }, events.ErrInvalidArgument, "workflow"},
		{"workflow ended id too long", events.TypeWorkflowEnded, func(e *events.Event) { payload[*events.WorkflowEnded](e).Workflow = strings.Repeat("w", 129) }, events.ErrInvalidArgument, "workflow"},
		{"workflow outcome with control", events.TypeWorkflowEnded, func(e *events.Event) { payload[*events.WorkflowEnded](e).Outcome = "ok\r\n" }, events.ErrInvalidArgument, "outcome"},

		// Admin events.
		{"quota set invalid quota", events.TypeQuotaSet, func(e *events.Event) { payload[*events.QuotaSet](e).Quota.WarnPercent = 101 }, events.ErrInvalidArgument, "quota.warn_percent"},
		{"quota set empty quota", events.TypeQuotaSet, func(e *events.Event) { payload[*events.QuotaSet](e).Quota = events.Quota{} }, events.ErrInvalidArgument, "quota.id"},
		{"quota delete missing id", events.TypeQuotaDeleted, func(e *events.Event) { payload[*events.QuotaDeleted](e).Quota = "" }, events.ErrInvalidArgument, "quota"},
		{"quota delete id with dot", events.TypeQuotaDeleted, func(e *events.Event) { payload[*events.QuotaDeleted](e).Quota = "a.b" }, events.ErrInvalidArgument, "quota"},
		{"reset missing quota", events.TypeCounterReset, func(e *events.Event) { payload[*events.CounterReset](e).Quota = "" }, events.ErrInvalidArgument, "quota"},
		{"reset split not utf8", events.TypeCounterReset, func(e *events.Event) { payload[*events.CounterReset](e).Split = "al\xffice" }, events.ErrInvalidArgument, "split"},
		{"reset reason too long", events.TypeCounterReset, func(e *events.Event) { payload[*events.CounterReset](e).Reason = strings.Repeat("r", 1025) }, events.ErrInvalidArgument, "reason"},
		{"plan negative timeout", events.TypePlanSet, func(e *events.Event) { payload[*events.PlanSet](e).RunTimeoutMs = -1 }, events.ErrInvalidArgument, "run_timeout_ms"},
		{"plan zero retention", events.TypePlanSet, func(e *events.Event) { payload[*events.PlanSet](e).RetentionDays = []int{7, 0} }, events.ErrInvalidArgument, "retention_days"},
		{"plan negative retention", events.TypePlanSet, func(e *events.Event) { payload[*events.PlanSet](e).RetentionDays = []int{-7} }, events.ErrInvalidArgument, "retention_days"},
		{"plan message too long", events.TypePlanSet, func(e *events.Event) { payload[*events.PlanSet](e).RetentionMessage = strings.Repeat("m", 1025) }, events.ErrInvalidArgument, "retention_message"},
		{"plan message with control", events.TypePlanSet, func(e *events.Event) { payload[*events.PlanSet](e).RetentionMessage = "bell\a" }, events.ErrInvalidArgument, "retention_message"},
		{"plan project not utf8", events.TypePlanSet, func(e *events.Event) { payload[*events.PlanSet](e).Project = "\xff" }, events.ErrInvalidArgument, "project"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			typ := tc.typ
			if typ == "" {
				typ = events.TypeUsageRecorded
			}
			e := exampleOf(t, typ)
			tc.mut(&e)
			wantInvalid(t, e.Validate(), tc.want, tc.field)
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	for _, e := range exampleEvents() {
		t.Run("example "+string(e.Type), func(t *testing.T) {
			if err := e.Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
	for _, tc := range []struct {
		name string
		typ  events.Type
		mut  func(e *events.Event)
	}{
		{"tenant of 64", events.TypeUsageRecorded, func(e *events.Event) { e.Tenant = strings.Repeat("T", 64) }},
		{"tenant of one", events.TypeUsageRecorded, func(e *events.Event) { e.Tenant = "a" }},
		{"tenant with dash and underscore", events.TypeUsageRecorded, func(e *events.Event) { e.Tenant = "acme_eu-1" }},
		{"id of 128 printable", events.TypeUsageRecorded, func(e *events.Event) { e.ID = strings.Repeat("~", 64) + strings.Repeat("!", 64) }},
		{"id with punctuation", events.TypeUsageRecorded, func(e *events.Event) { e.ID = "01J.*>:/#" }},
		{"no dims or groups", events.TypeUsageRecorded, func(e *events.Event) { e.Dims, e.Groups = nil, nil }},
		{"32 dims, 64 groups", events.TypeUsageRecorded, func(e *events.Event) {
			e.Dims = manyDims(32)
			e.Groups = make([]string, 64)
			for i := range e.Groups {
				e.Groups[i] = fmt.Sprintf("g%d", i)
			}
		}},
		{"dim value of 256 with unicode", events.TypeUsageRecorded, func(e *events.Event) { e.Dims["model"] = strings.Repeat("é", 128) }},
		{"empty dim value", events.TypeUsageRecorded, func(e *events.Event) { e.Dims["session"] = "" }},
		{"times in 2000 and 2200", events.TypeUsageRecorded, func(e *events.Event) { e.Time = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC) }},
		{"time late in 2200", events.TypeUsageRecorded, func(e *events.Event) { e.Time = time.Date(2200, 12, 31, 23, 59, 59, 0, time.UTC) }},
		{"time in another zone", events.TypeUsageRecorded, func(e *events.Event) { e.Time = t0.In(time.FixedZone("X", 3600)) }},
		{"zero usage", events.TypeUsageRecorded, func(e *events.Event) { e.Payload = &events.UsageRecorded{} }},
		{"amounts at max", events.TypeUsageRecorded, func(e *events.Event) {
			e.Payload = &events.UsageRecorded{Amounts: events.Amounts{
				Tokens: events.MaxAmount, InputTokens: events.MaxAmount / 2, OutputTokens: events.MaxAmount / 2,
				Requests: events.MaxAmount, Cost: events.MaxAmount, Actions: events.Counts{"x": events.MaxAmount},
			}}
		}},
		{"32 actions", events.TypeUsageRecorded, func(e *events.Event) { payload[*events.UsageRecorded](e).Actions = manyCounts(32) }},
		{"correction at -max", events.TypeUsageCorrected, func(e *events.Event) {
			p := payload[*events.UsageCorrected](e)
			p.Delta = events.Amounts{Cost: -events.MaxAmount, InputTokens: -events.MaxAmount / 2, OutputTokens: -events.MaxAmount / 2, Actions: events.Counts{"a": -events.MaxAmount}}
		}},
		{"correction mixed signs", events.TypeUsageCorrected, func(e *events.Event) {
			payload[*events.UsageCorrected](e).Delta = events.Amounts{InputTokens: events.MaxAmount, OutputTokens: -events.MaxAmount}
		}},
		{"release without reason", events.TypeReservationReleased, func(e *events.Event) { payload[*events.ReservationReleased](e).Reason = "" }},
		{"retry with only until", events.TypeRetrySignalled, func(e *events.Event) {
			e.Payload = &events.RetrySignalled{RetryUntil: t0}
		}},
		{"workflow step zero", events.TypeWorkflowStepped, func(e *events.Event) { payload[*events.WorkflowStepped](e).Step = 0 }},
		{"reset all splits", events.TypeCounterReset, func(e *events.Event) { payload[*events.CounterReset](e).Split = "" }},
		{"reset multi-value split", events.TypeCounterReset, func(e *events.Event) { payload[*events.CounterReset](e).Split = "alice/p1/gemini-2.0-flash" }},
		{"tenant-wide plan", events.TypePlanSet, func(e *events.Event) { e.Payload = &events.PlanSet{} }},
		{"quota with steps only", events.TypeQuotaSet, func(e *events.Event) {
			e.Payload = &events.QuotaSet{Quota: events.Quota{ID: "steps", MaxSteps: 10}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := exampleOf(t, tc.typ)
			tc.mut(&e)
			if err := e.Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestQuotaValidate(t *testing.T) {
	lim := func(f func(l *events.Limit)) func(q *events.Quota) {
		return func(q *events.Quota) { f(&q.Limits[0]) }
	}
	win := func(w events.Window) func(q *events.Quota) {
		return lim(func(l *events.Limit) { l.Window = w })
	}
	const w0 = "quota.limits[0].window"
	bad := []struct {
		name  string
		mut   func(q *events.Quota)
		field string
	}{
		{"missing id", func(q *events.Quota) { q.ID = "" }, "quota.id"},
		{"id with dot", func(q *events.Quota) { q.ID = "team.tokens" }, "quota.id"},
		{"id with space", func(q *events.Quota) { q.ID = "team tokens" }, "quota.id"},
		{"id too long", func(q *events.Quota) { q.ID = strings.Repeat("q", 129) }, "quota.id"},
		{"no limits", func(q *events.Quota) { q.Limits, q.MaxSteps = nil, 0 }, "quota.limits"},
		{"too many limits", func(q *events.Quota) { q.Limits = make([]events.Limit, 33) }, "quota.limits"},
		{"scope name with dot", func(q *events.Quota) { q.Scope["a.b"] = "x" }, "quota.scope"},
		{"scope value with control", func(q *events.Quota) { q.Scope["project"] = "p\x01" }, "quota.scope"},
		{"too many scope entries", func(q *events.Quota) { q.Scope = manyDims(33) }, "quota.scope"},
		{"too many split dims", func(q *events.Quota) { q.Split = strings.Fields("a b c d e f g h i") }, "quota.split"},
		{"split dim with dot", func(q *events.Quota) { q.Split = []string{"user.name"} }, "quota.split"},
		{"split dim empty", func(q *events.Quota) { q.Split = []string{""} }, "quota.split"},
		{"unknown metric", lim(func(l *events.Limit) { l.Metric = "bananas" }), "quota.limits[0].metric"},
		{"empty metric", lim(func(l *events.Limit) { l.Metric = "" }), "quota.limits[0].metric"},
		{"steps as a windowed metric", lim(func(l *events.Limit) { l.Metric = events.MetricSteps }), "quota.limits[0].metric"},
		{"action metric without name", lim(func(l *events.Limit) { l.Metric = "action:" }), "quota.limits[0].metric"},
		{"action metric with dot", lim(func(l *events.Limit) { l.Metric = "action:new.run" }), "quota.limits[0].metric"},
		{"negative max", lim(func(l *events.Limit) { l.Max = -1 }), "quota.limits[0].max"},
		{"max over MaxAmount", lim(func(l *events.Limit) { l.Max = events.MaxAmount + 1 }), "quota.limits[0].max"},
		{"error names the limit", func(q *events.Quota) { q.Limits[2].Max = -1 }, "quota.limits[2].max"},
		{"empty window kind", win(events.Window{Seconds: 60}), w0 + ".kind"},
		{"unknown window kind", win(events.Window{Kind: "tumbling", Seconds: 60}), w0 + ".kind"},
		{"calendar with seconds", win(events.Window{Kind: events.Calendar, Unit: events.UnitDay, Seconds: 86400}), w0 + ".seconds"},
		{"calendar without unit", win(events.Window{Kind: events.Calendar}), w0 + ".unit"},
		{"calendar with unknown unit", win(events.Window{Kind: events.Calendar, Unit: "fortnight"}), w0 + ".unit"},
		{"calendar unit in capitals", win(events.Window{Kind: events.Calendar, Unit: "DAY"}), w0 + ".unit"},
		{"unknown tz", win(events.Window{Kind: events.Calendar, Unit: events.UnitDay, TZ: "Mars/Olympus_Mons"}), w0 + ".tz"},
		{"tz that is a path", win(events.Window{Kind: events.Calendar, Unit: events.UnitDay, TZ: "../../etc/passwd"}), w0 + ".tz"},
		{"sliding tz unknown", win(events.Window{Kind: events.Sliding, Seconds: 60, TZ: "Nowhere/Town"}), w0 + ".tz"},
		{"sliding without length", win(events.Window{Kind: events.Sliding}), w0},
		{"rolling without length", win(events.Window{Kind: events.Rolling}), w0},
		{"sliding with month", win(events.Window{Kind: events.Sliding, Unit: events.UnitMonth}), w0 + ".unit"},
		{"sliding with unknown unit and seconds", win(events.Window{Kind: events.Sliding, Unit: "fortnight", Seconds: 60}), w0 + ".unit"},
		{"sliding negative seconds", win(events.Window{Kind: events.Sliding, Seconds: -60}), w0 + ".seconds"},
		{"sliding over 366 days", win(events.Window{Kind: events.Sliding, Seconds: 366*24*3600 + 1}), w0 + ".seconds"},
		{"rolling over 366 days", win(events.Window{Kind: events.Rolling, Seconds: 1 << 40}), w0 + ".seconds"},
		{"cost operation with dot", func(q *events.Quota) { q.Costs["vector.search"] = 2 }, "quota.costs"},
		{"negative cost multiplier", func(q *events.Quota) { q.Costs["query"] = -1 }, "quota.costs"},
		{"cost multiplier too large", func(q *events.Quota) { q.Costs["query"] = 1_000_001 }, "quota.costs"},
		{"negative warn_percent", func(q *events.Quota) { q.WarnPercent = -1 }, "quota.warn_percent"},
		{"warn_percent over 100", func(q *events.Quota) { q.WarnPercent = 101 }, "quota.warn_percent"},
		{"unknown enforcement", func(q *events.Quota) { q.Enforcement = "maybe" }, "quota.enforcement"},
		{"enforcement in capitals", func(q *events.Quota) { q.Enforcement = "HARD" }, "quota.enforcement"},
		{"negative max_steps", func(q *events.Quota) { q.MaxSteps = -1 }, "quota.max_steps"},
		{"max_steps over MaxAmount", func(q *events.Quota) { q.MaxSteps = events.MaxAmount + 1 }, "quota.max_steps"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			q := exampleQuota()
			tc.mut(&q)
			wantInvalid(t, q.Validate(), events.ErrInvalidArgument, tc.field)
			// The same quota inside a QuotaSet event is refused the same way.
			e := events.New("evt-q", "acme", t0, nil, &events.QuotaSet{Quota: q})
			wantInvalid(t, e.Validate(), events.ErrInvalidArgument, tc.field)
		})
	}

	good := []struct {
		name string
		mut  func(q *events.Quota)
	}{
		{"example", func(q *events.Quota) {}},
		{"minimal", func(q *events.Quota) {
			*q = events.Quota{ID: "q", Limits: []events.Limit{{Metric: events.MetricRequests, Max: 0, Window: events.Window{Kind: events.Sliding, Seconds: 1}}}}
		}},
		{"steps only", func(q *events.Quota) { q.Limits = nil }},
		{"soft", func(q *events.Quota) { q.Enforcement = events.Soft }},
		{"enforcement unset", func(q *events.Quota) { q.Enforcement = "" }},
		{"warn at 0 and 100", func(q *events.Quota) { q.WarnPercent = 100 }},
		{"warn unset", func(q *events.Quota) { q.WarnPercent = 0 }},
		{"max at MaxAmount", lim(func(l *events.Limit) { l.Max = events.MaxAmount })},
		{"32 limits", func(q *events.Quota) {
			q.Limits = make([]events.Limit, 32)
			for i := range q.Limits {
				q.Limits[i] = events.Limit{Metric: events.MetricCost, Max: int64(i), Window: events.Window{Kind: events.Sliding, Seconds: int64(i + 1)}}
			}
		}},
		{"8 split dims", func(q *events.Quota) { q.Split = strings.Fields("a b c d e f g h") }},
		{"group scope", func(q *events.Quota) { q.Scope = map[string]string{events.DimGroup: "research"} }},
		{"cost multipliers at bounds", func(q *events.Quota) { q.Costs = events.Counts{"free": 0, "dear": 1_000_000} }},
		{"every metric", func(q *events.Quota) {
			q.Limits = nil
			for _, m := range []events.Metric{events.MetricTokens, events.MetricInputTokens, events.MetricOutputTokens,
				events.MetricRequests, events.MetricCost, events.MetricWorkflows, events.ActionMetric("ai_query")} {
				q.Limits = append(q.Limits, events.Limit{Metric: m, Max: 1, Window: events.Window{Kind: events.Calendar, Unit: events.UnitDay}})
			}
		}},
	}
	for _, w := range []events.Window{
		{Kind: events.Sliding, Seconds: 1},
		{Kind: events.Sliding, Seconds: 366 * 24 * 3600},
		{Kind: events.Sliding, Unit: events.UnitHour},
		{Kind: events.Sliding, Unit: events.UnitWeek, TZ: "UTC"},
		{Kind: events.Sliding, Unit: events.UnitDay, Seconds: 600}, // seconds win over the unit
		{Kind: events.Rolling, Seconds: 3600},
		{Kind: events.Rolling, Unit: events.UnitDay},
		{Kind: events.Calendar, Unit: events.UnitHour},
		{Kind: events.Calendar, Unit: events.UnitDay, TZ: "America/New_York"},
		{Kind: events.Calendar, Unit: events.UnitWeek, TZ: "Asia/Kolkata"},
		{Kind: events.Calendar, Unit: events.UnitMonth, TZ: "Pacific/Chatham"},
	} {
		good = append(good, struct {
			name string
			mut  func(q *events.Quota)
		}{fmt.Sprintf("window %+v", w), win(w)})
	}
	for _, tc := range good {
		t.Run(tc.name, func(t *testing.T) {
			q := exampleQuota()
			tc.mut(&q)
			if err := q.Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestCheckSkew(t *testing.T) {
	const skew = 5 * time.Minute
	e := exampleOf(t, events.TypeUsageRecorded)
	for _, tc := range []struct {
		name string
		at   time.Time
		ok   bool
	}{
		{"now", t0, true},
		{"at the future bound", t0.Add(skew), true},
		{"at the past bound", t0.Add(-skew), true},
		{"just past the future bound", t0.Add(skew + time.Nanosecond), false},
		{"just past the past bound", t0.Add(-skew - time.Nanosecond), false},
		{"an hour ahead", t0.Add(time.Hour), false},
		{"a day late", t0.Add(-24 * time.Hour), false},
		{"same instant in another zone", t0.In(time.FixedZone("X", -7*3600)), true},
		{"zero time", time.Time{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.Time = tc.at
			err := events.CheckSkew(&e, t0, skew)
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantCode(t, err, events.ErrClockSkew)
			if errors.Is(err, events.ErrInvalidArgument) {
				t.Error("a clock skew error also matches ErrInvalidArgument")
			}
			var ee *events.Error
			errors.As(err, &ee)
			if ee.Details["id"] != e.ID || ee.Details["allowed_skew"] != skew.String() {
				t.Errorf("details = %v", ee.Details)
			}
		})
	}
	e.Time = t0
	if err := events.CheckSkew(&e, t0, 0); err != nil {
		t.Errorf("zero skew refuses an exact time: %v", err)
	}
	wantCode(t, events.CheckSkew(&e, t0.Add(time.Nanosecond), 0), events.ErrClockSkew)
}

// Validate returns a plain nil error, not a typed nil pointer, for a valid
// event, and an *Error that matches only its own sentinel otherwise.
func TestValidateErrorShape(t *testing.T) {
	e := exampleOf(t, events.TypeUsageRecorded)
	if err := e.Validate(); err != nil {
		t.Fatalf("valid event: %v", err)
	}
	q := exampleQuota()
	if err := q.Validate(); err != nil {
		t.Fatalf("valid quota: %v", err)
	}
	e.Tenant = "a.b"
	err := e.Validate()
	for _, s := range []*events.Error{events.ErrMalformed, events.ErrUnknownEventType, events.ErrTooLarge, events.ErrClockSkew,
		events.ErrQuotaExceeded, events.ErrRetryLater, events.ErrNotFound, events.ErrConflict, events.ErrUnavailable, events.ErrInternal} {
		if errors.Is(err, s) {
			t.Errorf("invalid tenant matches %s", s.Code)
		}
	}
	wrapped := fmt.Errorf("append: %w", err)
	wantCode(t, wrapped, events.ErrInvalidArgument)
	if got := events.AsError(wrapped); got.Code != events.CodeInvalidArgument {
		t.Errorf("AsError(wrapped) = %v", got)
	}
	if got := events.AsError(errors.New("disk on fire")); got.Code != events.CodeInternal {
		t.Errorf("AsError(plain) = %v", got)
	}
	if events.AsError(nil) != nil {
		t.Error("AsError(nil) is not nil")
	}
}

func TestErrorText(t *testing.T) {
	e := &events.Error{Code: events.CodeTooLarge, Message: "batch is big", Details: map[string]any{"size": 10, "limit": 5, "b": "x"}}
	const want = "too_large: batch is big (b=x, limit=5, size=10)"
	for i := 0; i < 20; i++ {
		if got := e.Error(); got != want {
			t.Fatalf("Error() = %q, want %q", got, want)
		}
	}
	if got := (&events.Error{Code: events.CodeConflict}).Error(); got != "conflict" {
		t.Errorf("bare Error() = %q", got)
	}
	r := events.ErrRetryLater.WithRetryAfter(1500 * time.Millisecond)
	if r.RetryAfter != 2 || events.ErrRetryLater.RetryAfter != 0 || !errors.Is(r, events.ErrRetryLater) {
		t.Errorf("WithRetryAfter: %+v (sentinel %+v)", r, events.ErrRetryLater)
	}
	if r := events.ErrRetryLater.WithRetryAfter(3 * time.Second); r.RetryAfter != 3 {
		t.Errorf("WithRetryAfter(3s) = %d", r.RetryAfter)
	}
}

// Zones come from the ledger's own database, whatever the host has, and the
// rules it holds are those of its release (Berlin's DST begins on the last
// Sunday of March).
func TestZonesFromTheLedgersDatabase(t *testing.T) {
	t.Setenv("ZONEINFO", t.TempDir()) // a host database that has no zones at all
	be, err := events.LoadZone("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	if _, off := time.Date(2026, 3, 29, 1, 59, 0, 0, be).Zone(); off != 3600 {
		t.Errorf("offset before the change %d, want 3600", off)
	}
	if _, off := time.Date(2026, 3, 29, 3, 0, 0, 0, be).Zone(); off != 7200 {
		t.Errorf("offset after the change %d, want 7200", off)
	}
	for _, name := range []string{"Mars/Olympus", "../../etc/passwd", "Local"} {
		if _, err := events.LoadZone(name); err == nil {
			t.Errorf("LoadZone(%q) succeeded", name)
		}
	}
	if loc, err := events.LoadZone(""); err != nil || loc != time.UTC {
		t.Errorf(`LoadZone("") = %v, %v`, loc, err)
	}
}

// ValidateCall answers every call exactly as Validate answers the usage
// event that carries it: a quota check is refused for what would refuse its
// usage, with the same code and message.
func TestValidateCallIsValidateOfItsUsage(t *testing.T) {
	long := strings.Repeat("x", 300)
	for _, c := range []struct {
		name   string
		tenant string
		dims   events.Dimensions
		groups []string
		a      events.Amounts
	}{
		{"valid", "acme", events.Dimensions{"user": "ana", "model": "gpt-4o"}, []string{"team-a"}, events.Amounts{Tokens: 10}},
		{"nothing asked", "acme", nil, nil, events.Amounts{}},
		{"no tenant", "", nil, nil, events.Amounts{}},
		{"tenant with a dot", "ac.me", nil, nil, events.Amounts{}},
		{"dimension name with a space", "acme", events.Dimensions{"us er": "ana"}, nil, events.Amounts{}},
		{"dimension value with a control character", "acme", events.Dimensions{"user": "a\x01na"}, nil, events.Amounts{}},
		{"dimension value too long", "acme", events.Dimensions{"user": long}, nil, events.Amounts{}},
		{"too many dimensions", "acme", manyDims(100), nil, events.Amounts{}},
		{"empty group", "acme", nil, []string{""}, events.Amounts{}},
		{"too many groups", "acme", nil, make([]string, 1000), events.Amounts{}},
		{"negative tokens", "acme", nil, nil, events.Amounts{Tokens: -1}},
		{"negative cost", "acme", events.Dimensions{"user": "ana"}, nil, events.Amounts{Cost: -5}},
		{"negative action", "acme", nil, nil, events.Amounts{Actions: events.Counts{"search": -1}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			probe := events.New("check", c.tenant, time.Now(), c.dims, &events.UsageRecorded{Amounts: c.a})
			probe.Groups = c.groups
			want := probe.Validate()
			got := events.ValidateCall(c.tenant, c.dims, c.groups, &c.a)
			if (got == nil) != (want == nil) || (got != nil && got.Error() != want.Error()) {
				t.Fatalf("ValidateCall: %v; Validate of the usage: %v", got, want)
			}
			if valid := c.name == "valid" || c.name == "nothing asked"; valid != (got == nil) {
				t.Fatalf("ValidateCall: %v", got)
			}
			if got != nil {
				wantCode(t, got, events.AsError(want))
			}
		})
	}
}
