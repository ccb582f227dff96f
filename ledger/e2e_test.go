package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ledgerworks/ledger/api"
	"github.com/ledgerworks/ledger/client"
	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/internal/ledgertest"
	"github.com/ledgerworks/ledger/ledger"
)

func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func usage(id, tenant string, at time.Time, in, out int64) events.Event {
	return events.New(id, tenant, at, events.Dimensions{"user": "u-" + tenant, "model": "m1"},
		&events.UsageRecorded{Amounts: events.Amounts{InputTokens: in, OutputTokens: out, Requests: 1}})
}

// Four producers publish 10,000 events over 100 accounts concurrently; a
// tenth are sent again with the same ID, some through another producer (so
// in another batch). The projection's totals equal the expected sums.
func TestProducersCountEveryEventOnce(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	l := ledgertest.StartLedger(t, ledger.Config{})
	nc := ledgertest.Connect(t, l.ClientURL())

	const producers, perProducer, accounts = 4, 2500, 100
	want := map[string][3]int64{} // tokens, input, requests per tenant
	var plan [producers][]events.Event
	var resend [producers][]events.Event
	rng := rand.New(rand.NewPCG(1, 2))
	now := time.Now()
	for p := range producers {
		for i := range perProducer {
			tenant := fmt.Sprintf("acct-%03d", rng.IntN(accounts))
			in, out := rng.Int64N(1000), rng.Int64N(1000)
			ev := usage(fmt.Sprintf("p%d-e%d", p, i), tenant, now, in, out)
			plan[p] = append(plan[p], ev)
			w := want[tenant]
			want[tenant] = [3]int64{w[0] + in + out, w[1] + in, w[2] + 1}
			if i%10 == 0 { // a tenth sent twice, by the next producer
				resend[(p+1)%producers] = append(resend[(p+1)%producers], ev)
			}
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, producers)
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pr, err := client.NewProducer(nc, client.ProducerOptions{MaxBatch: 64})
			if err != nil {
				errs <- err
				return
			}
			evs := append(append([]events.Event{}, plan[p]...), resend[p]...)
			for _, ev := range evs {
				if err := pr.Record(ctx, ev); err != nil {
					errs <- err
					return
				}
			}
			errs <- pr.Close(ctx)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	js := ledgertest.JetStream(t, nc)
	last, err := ledger.StreamLastSeq(ctx, js, events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for tenant, w := range want {
		u, err := c.Usage(ctx, tenant, last)
		if err != nil {
			t.Fatal(err)
		}
		got := [3]int64{u.Totals[events.MetricTokens], u.Totals[events.MetricInputTokens], u.Totals[events.MetricRequests]}
		if got != w {
			t.Errorf("%s: totals (tokens, input, requests) = %v, want %v", tenant, got, w)
		}
	}
	if r := l.Projector().Rejected(); r != 0 {
		t.Errorf("projector refused %d messages or events", r)
	}
}

// The ledger stopped and started on the same data answers the same checks.
func TestRestartAnswersTheSame(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	dir := t.TempDir()
	clock := time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)
	cfg := ledger.Config{DataDir: dir, Service: ledger.ServiceOptions{Now: func() time.Time { return clock }}}

	l := ledgertest.StartLedger(t, cfg)
	nc := ledgertest.Connect(t, l.ClientURL())
	c, _ := client.New(nc)
	q := events.Quota{ID: "daily", Split: []string{"user"}, Limits: []events.Limit{
		{Metric: events.MetricTokens, Max: 5000, Window: events.Window{Kind: events.Calendar, Unit: events.UnitDay, TZ: "Europe/Berlin"}},
		{Metric: events.MetricRequests, Max: 3, Window: events.Window{Kind: events.Sliding, Seconds: 3600}},
	}}
	if _, err := c.SetQuota(ctx, "acme", q); err != nil {
		t.Fatal(err)
	}
	rec, err := c.RecordUsage(ctx, usage("r1", "acme", clock.Add(-time.Minute), 1200, 300), usage("r2", "acme", clock, 10, 20))
	if err != nil {
		t.Fatal(err)
	}
	check := api.CheckRequest{Tenant: "acme", Dims: events.Dimensions{"user": "u-acme"}, Request: events.Amounts{Tokens: 100}, AfterSeq: rec.Seq}
	before, err := c.Check(ctx, check)
	if err != nil {
		t.Fatal(err)
	}
	if len(before.Limits) != 2 || before.Limits[0].Used != 1530 || before.Limits[1].Used != 2 {
		t.Fatalf("check before restart: %+v", before)
	}
	nc.Close()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l2 := ledgertest.StartLedger(t, cfg)
	c2, _ := client.New(ledgertest.Connect(t, l2.ClientURL()))
	after, err := c2.Check(ctx, check)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(after.Limits) != fmt.Sprint(before.Limits) || after.Allowed != before.Allowed || after.AppliedSeq != before.AppliedSeq {
		t.Fatalf("after restart:\n%+v\nbefore:\n%+v", after, before)
	}
	if got, err := c2.ListQuotas(ctx, "acme"); err != nil || len(got) != 1 || got[0].Quota.ID != "daily" {
		t.Fatalf("quotas after restart: %+v, %v", got, err)
	}
}

// Every kind of bad input gets a typed error and appends nothing.
func TestBadInputChangesNothing(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	l := ledgertest.StartLedger(t, ledger.Config{})
	nc := ledgertest.Connect(t, l.ClientURL())
	js := ledgertest.JetStream(t, nc)
	now := time.Now().UTC()
	ts := now.Format(time.RFC3339Nano)
	good := func(tenant string) string {
		return `{"id":"ok-1","type":"usage.recorded.v1","tenant":"` + tenant + `","time":"` + ts + `","data":{"tokens":5}}`
	}
	big := make([]byte, api.MaxRequestBytes+10)
	for i := range big {
		big[i] = ' '
	}
	cases := []struct {
		name    string
		subject string
		body    []byte
		code    events.Code
	}{
		{"malformed json", api.SubjectRecordUsage, []byte(`{"id":"x","type":`), events.CodeMalformed},
		{"malformed msgpack", api.SubjectRecordUsage, []byte{0x93, 0xc1, 0xff}, events.CodeMalformed},
		{"truncated msgpack", api.SubjectRecordUsage, []byte{0x91, 0x88, 0xa1, 'v'}, events.CodeMalformed},
		{"unknown event type", api.SubjectRecordUsage, []byte(`{"id":"x","type":"usage.teleported.v1","tenant":"acme","time":"` + ts + `","data":{}}`), events.CodeUnknownEventType},
		{"negative amount", api.SubjectRecordUsage, []byte(`{"id":"x","type":"usage.recorded.v1","tenant":"acme","time":"` + ts + `","data":{"tokens":-5}}`), events.CodeInvalidArgument},
		{"amount over the maximum", api.SubjectRecordUsage, []byte(`{"id":"x","type":"usage.recorded.v1","tenant":"acme","time":"` + ts + `","data":{"tokens":2000000000000000}}`), events.CodeInvalidArgument},
		{"amount overflowing int64", api.SubjectRecordUsage, []byte(`{"id":"x","type":"usage.recorded.v1","tenant":"acme","time":"` + ts + `","data":{"tokens":99999999999999999999}}`), events.CodeMalformed},
		{"another tenant than the subject's", api.SubjectRecordUsage, []byte(good("globex")), events.CodeInvalidArgument},
		{"tenant with a dot", api.SubjectRecordUsage, []byte(good("a.b")), events.CodeInvalidArgument},
		{"tenant with a wildcard", api.SubjectRecordUsage, []byte(good("a*")), events.CodeInvalidArgument},
		{"tenant with a space", api.SubjectRecordUsage, []byte(good("a b")), events.CodeInvalidArgument},
		{"oversize payload", api.SubjectRecordUsage, big, events.CodeTooLarge},
		{"one bad event in a batch", api.SubjectRecordUsage, []byte(`[` + good("acme") + `,{"id":"y","type":"usage.recorded.v1","tenant":"acme","time":"` + ts + `","data":{"requests":-1}}]`), events.CodeInvalidArgument},
		{"time outside the skew", api.SubjectRecordUsage, []byte(`{"id":"x","type":"usage.recorded.v1","tenant":"acme","time":"` + now.Add(-time.Hour).Format(time.RFC3339) + `","data":{"tokens":5}}`), events.CodeClockSkew},
		{"decision type on the usage subject", api.SubjectRecordUsage, []byte(`{"id":"x","type":"workflow.begun.v1","tenant":"acme","time":"` + ts + `","data":{"workflow":"w"}}`), events.CodeInvalidArgument},
		{"bad quota", api.SubjectQuotaSet, []byte(`{"tenant":"acme","quota":{"id":"q","limits":[{"metric":"tokens","max":10,"window":{"kind":"weekly"}}]}}`), events.CodeInvalidArgument},
		{"quota for a bad tenant", api.SubjectQuotaSet, []byte(`{"tenant":"a>b","quota":{"id":"q","limits":[{"metric":"tokens","max":10,"window":{"kind":"calendar","unit":"day"}}]}}`), events.CodeInvalidArgument},
		{"malformed check", api.SubjectCheck, []byte(`{"tenant":`), events.CodeMalformed},
		{"delete a missing quota", api.SubjectQuotaDelete, []byte(`{"tenant":"acme","id":"nope"}`), events.CodeNotFound},
		{"malformed batch", api.SubjectBatch, []byte(`{"ops":[{"reserve":`), events.CodeMalformed},
		{"empty batch", api.SubjectBatch, []byte(`{"ops":[]}`), events.CodeInvalidArgument},
		{"batch over the size limit", api.SubjectBatch, []byte(`{"ops":[` + strings.Repeat(`{"release":{"tenant":"acme","reservation":"r"}},`, api.MaxBatchOps) + `{}]}`), events.CodeInvalidArgument},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before, err := ledger.StreamLastSeq(ctx, js, events.StreamName)
			if err != nil {
				t.Fatal(err)
			}
			msg, err := nc.RequestWithContext(ctx, api.TenantSubject(tc.subject, "acme"), tc.body)
			if err != nil {
				t.Fatal(err)
			}
			if msg.Header.Get(api.HeaderErrorCode) == "" {
				t.Fatalf("no error header; reply %s", msg.Data)
			}
			var er api.ErrorReply
			if err := api.Decode(msg.Data, &er); err != nil || er.Error == nil {
				t.Fatalf("error body %q: %v", msg.Data, err)
			}
			if er.Error.Code != tc.code {
				t.Fatalf("code %s (%s), want %s", er.Error.Code, er.Error.Message, tc.code)
			}
			after, _ := ledger.StreamLastSeq(ctx, js, events.StreamName)
			if after != before {
				t.Fatalf("stream moved from %d to %d on bad input", before, after)
			}
		})
	}

	// The Go client returns the same codes as typed errors.
	c, _ := client.New(nc)
	_, err := c.RecordUsage(ctx, usage("neg", "acme", now, -1, 0))
	if !errors.Is(err, events.ErrInvalidArgument) {
		t.Fatalf("client: %v, want invalid_argument", err)
	}
	var e *events.Error
	if !errors.As(err, &e) || e.Details["field"] != "input_tokens" {
		t.Fatalf("client error details: %#v", err)
	}
	pr, err := client.NewProducer(nc, client.ProducerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close(ctx)
	if err := pr.Record(ctx, usage("x", "a.b", now, 1, 1)); !errors.Is(err, events.ErrInvalidArgument) {
		t.Fatalf("producer: %v, want invalid_argument", err)
	}
	if err := pr.Record(ctx, usage("late", "acme", now.Add(-time.Hour), 1, 1)); !errors.Is(err, events.ErrClockSkew) {
		t.Fatalf("producer: %v, want clock_skew", err)
	}
}
