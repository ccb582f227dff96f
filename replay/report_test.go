package replay_test

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/replay"
)

var update = flag.Bool("update", false, "rewrite the golden reports in testdata/")

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func ev(id, tenant, at string, d events.Dimensions, p events.Payload) events.Event {
	return events.New(id, tenant, ts(at), d, p)
}

func who(user, model string) events.Dimensions {
	return events.Dimensions{"user": user, "model": model}
}

// billingFixture is a hand-made history around the two DST changes of 2026
// in Europe/Berlin (29 March, clocks 02:00 -> 03:00; 25 October, 03:00 ->
// 02:00): events on both sides of every period boundary, a duplicate with
// other amounts, a correction, reservations reconciled inside and after the
// period, released, expired and never settled, an invalid event and one on
// another tenant's subject.
func billingFixture() []batch {
	rec := func(id, tenant, at string, d events.Dimensions, a events.Amounts) events.Event {
		return ev(id, tenant, at, d, &events.UsageRecorded{Amounts: a})
	}
	res := func(id, tenant, at string, d events.Dimensions, rid string, est events.Amounts) events.Event {
		return ev(id, tenant, at, d, &events.ReservationCreated{Reservation: rid, Estimate: est, ExpiresAt: ts(at).Add(time.Hour)})
	}
	u, dec, adm := events.ClassUsage, events.ClassDecision, events.ClassAdmin
	return []batch{
		{"acme", adm, []events.Event{ev("q1", "acme", "2026-03-27T12:00:00Z", nil, &events.QuotaSet{Quota: events.Quota{ID: "daily", Limits: []events.Limit{{Metric: events.MetricTokens, Max: 100000, Window: events.Window{Kind: events.Calendar, Unit: events.UnitDay, TZ: "Europe/Berlin"}}}}})}},
		{"acme", u, []events.Event{
			rec("u1", "acme", "2026-03-27T22:30:00Z", who("ana", "gpt-4o"), events.Amounts{InputTokens: 100, OutputTokens: 50, Requests: 1}),                                                    // 23:30 CET on the 27th: before
			rec("u2", "acme", "2026-03-27T23:00:00Z", who("ana", "gpt-4o"), events.Amounts{InputTokens: 200, OutputTokens: 100, Requests: 1, Cost: 1500, Actions: events.Counts{"new_run": 1}}), // 00:00 CET on the 28th: first instant
		}},
		{"acme", dec, []events.Event{res("r1c", "acme", "2026-03-27T21:00:00Z", who("ben", "claude"), "r1", events.Amounts{Tokens: 1000})}},
		{"acme", dec, []events.Event{ev("r1r", "acme", "2026-03-28T08:00:00Z", nil, &events.ReservationReconciled{Reservation: "r1", Actual: events.Amounts{InputTokens: 300, OutputTokens: 200, Requests: 1}})}},
		{"acme", u, []events.Event{
			rec("u3", "acme", "2026-03-28T22:59:59Z", who("ben", "claude"), events.Amounts{Tokens: 5000, Requests: 1}),                                                            // 23:59:59 CET on the 28th
			rec("u4", "acme", "2026-03-28T23:00:00Z", who("ana", "gpt-4o"), events.Amounts{InputTokens: 10, OutputTokens: 5, Requests: 1, Actions: events.Counts{"ai_query": 2}}), // 00:00 CET on the 29th
		}},
		{"beta", u, []events.Event{rec("v1", "beta", "2026-03-29T01:30:00Z", who("cai", "gpt-4o"), events.Amounts{InputTokens: 1000, OutputTokens: 1000, Requests: 2, Cost: 20000})}}, // 03:30 CEST
		{"acme", u, []events.Event{
			rec("u2", "acme", "2026-03-27T23:00:00Z", who("ana", "gpt-4o"), events.Amounts{InputTokens: 9999, Requests: 9}),               // a duplicate: the first u2 counts
			rec("u5", "acme", "2026-03-29T21:59:59Z", who("ana", "gpt-4o"), events.Amounts{InputTokens: 1, OutputTokens: 1, Requests: 1}), // 23:59:59 CEST: last instant
		}},
		{"acme", u, []events.Event{rec("u6", "acme", "2026-03-29T22:00:00Z", who("ana", "gpt-4o"), events.Amounts{Tokens: 777, Requests: 1})}}, // 00:00 CEST on the 30th: after
		{"acme", u, []events.Event{ev("c1", "acme", "2026-03-29T10:00:00Z", who("ana", "gpt-4o"), &events.UsageCorrected{Corrects: "u2", Delta: events.Amounts{InputTokens: -50, Cost: -500}, Reason: "re-priced"})}},
		{"acme", dec, []events.Event{res("r2c", "acme", "2026-03-29T12:00:00Z", who("ana", "gpt-4o"), "r2", events.Amounts{InputTokens: 500, Requests: 1})}},
		{"acme", dec, []events.Event{ev("r2x", "acme", "2026-03-29T12:10:00Z", nil, &events.ReservationReleased{Reservation: "r2", Reason: "never ran"})}},
		{"acme", dec, []events.Event{res("r3c", "acme", "2026-03-29T20:00:00Z", who("ben", "claude"), "r3", events.Amounts{Tokens: 2000})}},
		{"beta", dec, []events.Event{res("r4c", "beta", "2026-03-29T21:00:00Z", who("cai", "gpt-4o"), "r4", events.Amounts{Tokens: 700, Actions: events.Counts{"new_run": 1}})}},
		{"beta", dec, []events.Event{res("r5c", "beta", "2026-03-28T10:00:00Z", who("dee", "llama"), "r5", events.Amounts{Tokens: 50})}},
		{"beta", dec, []events.Event{ev("r5e", "beta", "2026-03-28T10:05:00Z", nil, &events.ReservationExpired{Reservation: "r5"})}},
		{"acme", u, []events.Event{rec("bad", "acme", "2026-03-28T12:00:00Z", who("ana", "gpt-4o"), events.Amounts{Tokens: -1})}},
		{"beta", u, []events.Event{rec("stray", "acme", "2026-03-28T12:00:00Z", who("ana", "gpt-4o"), events.Amounts{Tokens: 31337})}},
		{"acme", dec, []events.Event{res("r6c", "acme", "2026-03-30T01:00:00Z", who("ana", "gpt-4o"), "r6", events.Amounts{Tokens: 10})}},
		{"acme", dec, []events.Event{ev("r3r", "acme", "2026-03-30T00:30:00Z", nil, &events.ReservationReconciled{Reservation: "r3", Actual: events.Amounts{Tokens: 1800, Requests: 1}})}},
		{"beta", u, []events.Event{rec("v2", "beta", "2026-03-28T05:00:00Z", who("dee", "llama"), events.Amounts{Tokens: 42, Requests: 1})}}, // late, but in the period
		// The end of DST: 02:00-03:00 local happens twice on 25 October.
		{"acme", u, []events.Event{
			rec("f1", "acme", "2026-10-24T21:59:59Z", who("ana", "gpt-4o"), events.Amounts{Tokens: 1, Requests: 1}),      // 23:59:59 CEST on the 24th: before
			rec("f2", "acme", "2026-10-24T22:00:00Z", who("ana", "gpt-4o"), events.Amounts{Tokens: 10, Requests: 1}),     // 00:00 CEST on the 25th
			rec("f3", "acme", "2026-10-25T00:30:00Z", who("ana", "gpt-4o"), events.Amounts{Tokens: 100, Requests: 1}),    // 02:30 CEST
			rec("f4", "acme", "2026-10-25T01:30:00Z", who("ana", "gpt-4o"), events.Amounts{Tokens: 1000, Requests: 1}),   // 02:30 CET, an hour later
			rec("f5", "acme", "2026-10-25T22:59:59Z", who("ben", "claude"), events.Amounts{Tokens: 10000, Requests: 1}),  // 23:59:59 CET on the 25th
			rec("f6", "acme", "2026-10-25T23:00:00Z", who("ben", "claude"), events.Amounts{Tokens: 100000, Requests: 1}), // 00:00 CET on the 26th: after
		}},
	}
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func berlin(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

type reportCase struct {
	name   string
	opts   replay.ReportOptions
	format string
}

func reportCases(t *testing.T) []reportCase {
	be := berlin(t)
	return []reportCase{
		{"report_dst_spring_day.csv", replay.ReportOptions{From: time.Date(2026, 3, 28, 0, 0, 0, 0, be), To: time.Date(2026, 3, 30, 0, 0, 0, 0, be), Location: be, GroupBy: []string{"tenant", "user", "model", "day"}}, "csv"},
		{"report_dst_spring_day.json", replay.ReportOptions{From: time.Date(2026, 3, 28, 0, 0, 0, 0, be), To: time.Date(2026, 3, 30, 0, 0, 0, 0, be), Location: be, GroupBy: []string{"tenant", "user", "model", "day"}}, "json"},
		{"report_dst_fall_hour.csv", replay.ReportOptions{From: time.Date(2026, 10, 25, 0, 0, 0, 0, be), To: time.Date(2026, 10, 26, 0, 0, 0, 0, be), Location: be, GroupBy: []string{"hour", "user"}}, "csv"},
		{"report_tenant_utc.csv", replay.ReportOptions{From: ts("2026-03-28T00:00:00Z"), To: ts("2026-03-30T00:00:00Z")}, "csv"},
	}
}

func render(t *testing.T, ctx context.Context, src replay.Source, c reportCase) []byte {
	t.Helper()
	rep, err := replay.BuildReport(ctx, src, c.opts)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if c.format == "json" {
		err = rep.WriteJSON(&b)
	} else {
		err = rep.WriteCSV(&b)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// appendFixture appends the billing fixture to a new stream.
func appendFixture(t *testing.T) jetstream.JetStream {
	t.Helper()
	_, js := stream(t)
	appendAll(t, js, billingFixture())
	return js
}

// Reports of periods crossing both DST changes match the golden files; the
// same report twice is byte-identical, and so is the report computed from
// the same messages held in memory.
func TestReportGolden(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	js := appendFixture(t)
	src := source(t, js)
	var mem replay.MemorySource
	if _, err := src.Read(ctx, replay.Range{}, func(b []replay.Message) error {
		mem.Messages = append(mem.Messages, b...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	mem.Batch = 3
	for _, c := range reportCases(t) {
		t.Run(c.name, func(t *testing.T) {
			first := render(t, ctx, src, c)
			golden(t, c.name, first)
			if again := render(t, ctx, src, c); !bytes.Equal(first, again) {
				t.Fatalf("a second run differs:\n%s\n---\n%s", first, again)
			}
			if fromMem := render(t, ctx, &mem, c); !bytes.Equal(first, fromMem) {
				t.Fatalf("the report from the same messages in memory differs:\n%s\n---\n%s", first, fromMem)
			}
		})
	}
}

func TestReportOptionsValidate(t *testing.T) {
	for _, o := range []replay.ReportOptions{
		{},
		{From: ts("2026-01-02T00:00:00Z"), To: ts("2026-01-01T00:00:00Z")},
		{From: ts("2026-01-01T00:00:00Z"), To: ts("2026-01-02T00:00:00Z"), GroupBy: []string{"group"}},
		{From: ts("2026-01-01T00:00:00Z"), To: ts("2026-01-02T00:00:00Z"), GroupBy: []string{"user", "user"}},
	} {
		if err := o.Validate(); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}
