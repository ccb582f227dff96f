package ledger_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ledgerworks/ledger/api"
	"github.com/ledgerworks/ledger/client"
	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/internal/ledgertest"
	"github.com/ledgerworks/ledger/ledger"
	"github.com/ledgerworks/ledger/projections"
)

// get GETs url with a real client and returns the status and body.
func get(t *testing.T, ctx context.Context, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// scrape GETs /metrics from addr and parses it with the Prometheus text
// parser.
func scrape(t *testing.T, ctx context.Context, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s", resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("scrape: content type %q, want the text format", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse the scrape: %v", err)
	}
	return fams
}

// value is the value of the sample of family name whose labels include
// labels (name, value pairs); ok is false when there is none.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (v float64, ok bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		for i := 0; i < len(labels); i += 2 {
			found := false
			for _, lp := range m.Label {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

// sum adds up the samples of family name.
func sum(fams map[string]*dto.MetricFamily, name string) float64 {
	var s float64
	if f := fams[name]; f != nil {
		for _, m := range f.Metric {
			s += m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	return s
}

// expect fails the test unless the sample is there with value want.
func expect(t *testing.T, fams map[string]*dto.MetricFamily, want float64, name string, labels ...string) {
	t.Helper()
	got, ok := value(fams, name, labels...)
	switch {
	case !ok:
		t.Errorf("%s%v: no such sample", name, labels)
	case got != want:
		t.Errorf("%s%v = %v, want %v", name, labels, got, want)
	}
}

// After known traffic (2 checks allowed, 3 reservations granted, a fourth
// denied, a check denied, a release, two usage events), /metrics counts
// exactly that, no label anywhere carries the tenant or the user, and the
// open reservations are the store's after a restart.
func TestMetricsCountKnownTraffic(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	const tenant, user = "metrics-tenant-7f3a", "metrics-user-5c1e"
	dir := t.TempDir()
	cfg := ledger.Config{DataDir: dir, HTTP: "127.0.0.1:0"}
	l := ledgertest.StartLedger(t, cfg)
	if l.HTTPAddr() == "" || strings.HasSuffix(l.HTTPAddr(), ":0") {
		t.Fatalf("HTTPAddr %q: want the bound address", l.HTTPAddr())
	}
	nc := ledgertest.Connect(t, l.ClientURL())
	c, err := client.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	day := events.Window{Kind: events.Calendar, Unit: "day"}
	if _, err := c.SetQuota(ctx, tenant, events.Quota{ID: "three-requests", Split: []string{"user"}, Limits: []events.Limit{{Metric: events.MetricRequests, Max: 3, Window: day}}}); err != nil {
		t.Fatal(err)
	}
	who := events.Dimensions{"user": user, "model": "m1"}
	one := events.Amounts{Requests: 1}
	js := ledgertest.JetStream(t, ledgertest.Connect(t, l.ClientURL()))
	check := func(allowed bool) {
		t.Helper()
		// After every decision appended: a reserve is answered once
		// appended, not once folded.
		last := streamLastSeq(t, ctx, js)
		r, err := c.Check(ctx, api.CheckRequest{Tenant: tenant, Dims: who, Request: one, AfterSeq: last})
		if err != nil || r.Allowed != allowed {
			t.Fatalf("check: allowed %v, %v; want allowed %v", r != nil && r.Allowed, err, allowed)
		}
	}
	check(true)
	check(true)
	var held []*client.Reservation
	for range 3 {
		r, err := c.Reserve(ctx, tenant, who, one, client.ReserveOptions{TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, r)
	}
	if _, err := c.Reserve(ctx, tenant, who, one, client.ReserveOptions{TTL: time.Hour}); !errors.Is(err, events.ErrQuotaExceeded) {
		t.Fatalf("the fourth reserve: %v, want quota_exceeded", err)
	}
	check(false)
	if r, err := held[0].Release(ctx, "not needed"); err != nil || r.Outcome != projections.OutcomeReleased {
		t.Fatalf("release: %+v, %v", r, err)
	}
	rec, err := c.RecordUsage(ctx,
		events.New("u1", tenant, time.Now(), who, &events.UsageRecorded{Amounts: events.Amounts{Tokens: 10}}),
		events.New("u2", tenant, time.Now(), who, &events.UsageRecorded{Amounts: events.Amounts{Tokens: 20}}))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Projector().WaitApplied(ctx, rec.Seq); err != nil {
		t.Fatal(err)
	}

	fams := scrape(t, ctx, l.HTTPAddr())
	expect(t, fams, 3, "ledger_decisions_total", "op", "reserve", "result", "created")
	expect(t, fams, 1, "ledger_decisions_total", "op", "reserve", "result", string(events.CodeQuotaExceeded))
	expect(t, fams, 1, "ledger_decisions_total", "op", "release", "result", projections.OutcomeReleased)
	if n := sum(fams, "ledger_decisions_total"); n != 5 {
		t.Errorf("%v decisions counted, want 5", n)
	}
	expect(t, fams, 4, "ledger_decision_duration_seconds", "op", "reserve") // the histogram's count
	expect(t, fams, 1, "ledger_decision_duration_seconds", "op", "release")
	expect(t, fams, 2, "ledger_checks_total", "result", "allowed")
	expect(t, fams, 1, "ledger_checks_total", "result", string(events.CodeQuotaExceeded))
	expect(t, fams, 3, "ledger_check_duration_seconds")
	// Folded: the quota, three reservations, a release, two usage events.
	expect(t, fams, 7, "ledger_projection_events_ingested_total")
	expect(t, fams, 0, "ledger_projection_duplicates_dropped_total")
	expect(t, fams, 0, "ledger_projection_rejected_total")
	expect(t, fams, 3, "ledger_reservations_created_total")
	expect(t, fams, 1, "ledger_reservations_settled_total", "outcome", projections.OutcomeReleased)
	expect(t, fams, 0, "ledger_reservations_settled_total", "outcome", projections.OutcomeExpired)
	expect(t, fams, 2, "ledger_reservations_open")
	expect(t, fams, 2, "ledger_reservations_reserved_requests")
	part := fmt.Sprint(events.Partition(tenant))
	expect(t, fams, float64(l.Projector().Applied()), "ledger_projection_applied_sequence", "partition", part)
	expect(t, fams, 1, "ledger_partition_state", "partition", part, "state", "owner")
	expect(t, fams, 0, "ledger_partition_state", "partition", part, "state", "standby")
	expect(t, fams, 1, "ledger_stream_up")
	expect(t, fams, float64(rec.Seq), "ledger_stream_last_sequence")
	expect(t, fams, 0, "ledger_projection_lag_messages", "partition", part)
	expect(t, fams, 1, "ledger_nats_connected")
	for _, name := range []string{"ledger_pebble_compactions_total", "ledger_pebble_block_cache_hits_total", "ledger_pebble_block_cache_misses_total", "ledger_nats_reconnects_total", "go_goroutines", "process_cpu_seconds_total"} {
		if _, ok := value(fams, name); !ok {
			t.Errorf("no %s", name)
		}
	}
	noCallerLabels(t, fams, tenant, user)
	problems, err := testutil.GatherAndLint(l.Metrics().Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}

	// Restarted, the counters start again, and the open reservations are
	// read back from the store.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = ledgertest.StartLedger(t, cfg)
	fams = scrape(t, ctx, l.HTTPAddr())
	expect(t, fams, 2, "ledger_reservations_open")
	expect(t, fams, 2, "ledger_reservations_reserved_requests")
	expect(t, fams, 0, "ledger_reservations_created_total")
	if n := sum(fams, "ledger_decisions_total"); n != 0 {
		t.Errorf("%v decisions counted after a restart, want 0", n)
	}
	noCallerLabels(t, fams, tenant, user)
}

// noCallerLabels fails the test if any label of any sample carries one of
// the callers' values.
func noCallerLabels(t *testing.T, fams map[string]*dto.MetricFamily, values ...string) {
	t.Helper()
	for name, f := range fams {
		for _, m := range f.Metric {
			for _, lp := range m.Label {
				for _, v := range values {
					if strings.Contains(lp.GetValue(), v) {
						t.Errorf("%s{%s=%q} carries %q", name, lp.GetName(), lp.GetValue(), v)
					}
				}
			}
		}
	}
}

// gate holds a projector's fold back while closed (see
// projections.ProjectorOptions.BeforeFold).
type gate struct {
	mu sync.Mutex
	ch chan struct{} // nil: open
}

func (g *gate) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ch = make(chan struct{})
}

func (g *gate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ch != nil {
		close(g.ch)
		g.ch = nil
	}
}

func (g *gate) wait(ctx context.Context) {
	g.mu.Lock()
	ch := g.ch
	g.mu.Unlock()
	if ch != nil {
		select {
		case <-ch:
		case <-ctx.Done():
		}
	}
}

// readyz GETs /readyz and decodes its one-line JSON body.
func readyz(t *testing.T, ctx context.Context, addr string) (int, map[string]any) {
	t.Helper()
	code, body := get(t, ctx, "http://"+addr+"/readyz")
	if strings.Count(strings.TrimSpace(body), "\n") != 0 {
		t.Fatalf("/readyz body is not one line: %q", body)
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatalf("/readyz body %q: %v", body, err)
	}
	return code, out
}

// /readyz turns 503 when the projection falls more than ReadyMaxLag
// messages behind the stream (its fold held back while events are
// appended), the lag metrics say by how much, and it turns 200 again once
// the projection has caught up. /healthz answers 200 throughout.
func TestReadyzFollowsProjectionLag(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	var g gate
	l := ledgertest.StartLedger(t, ledger.Config{HTTP: "127.0.0.1:0", ReadyMaxLag: 5, Projector: projections.ProjectorOptions{BeforeFold: g.wait}})
	addr := l.HTTPAddr()
	if code, body := get(t, ctx, "http://"+addr+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	ledgertest.Eventually(t, 10*time.Second, "ready at start", func() bool {
		code, _ := readyz(t, ctx, addr)
		return code == http.StatusOK
	})

	g.close()
	nc := ledgertest.Connect(t, l.ClientURL())
	app := ledger.NewAppender(ledgertest.JetStream(t, nc))
	const tenant, appended = "lagging", 8
	var last uint64
	for i := range appended { // one stream message each
		seq, err := app.Append(ctx, tenant, events.ClassUsage, []events.Event{usage(fmt.Sprintf("lag-%d", i), tenant, time.Now(), 1, 1)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		last = seq
	}
	var body map[string]any
	ledgertest.Eventually(t, 10*time.Second, "not ready while the fold is held", func() bool {
		var code int
		code, body = readyz(t, ctx, addr)
		return code == http.StatusServiceUnavailable
	})
	if body["ready"] != false || !strings.Contains(fmt.Sprint(body["reason"]), "behind") || body["lag_messages"] != float64(appended) {
		t.Errorf("/readyz while held: %v", body)
	}
	fams := scrape(t, ctx, addr)
	part := fmt.Sprint(events.Partition(tenant))
	expect(t, fams, appended, "ledger_projection_lag_messages", "partition", part)
	if s, _ := value(fams, "ledger_projection_lag_seconds", "partition", part); s <= 0 {
		t.Errorf("ledger_projection_lag_seconds{partition=%s} = %v, want > 0", part, s)
	}
	if n := sum(fams, "ledger_projection_lag_messages"); n != appended {
		t.Errorf("lag over all partitions %v, want %d", n, appended)
	}
	if code, _ := get(t, ctx, "http://"+addr+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz while not ready: %d", code)
	}

	g.open()
	ledgertest.Eventually(t, 10*time.Second, "ready once caught up", func() bool {
		var code int
		code, body = readyz(t, ctx, addr)
		return code == http.StatusOK
	})
	if body["ready"] != true || body["lag_messages"] != float64(0) || body["applied_seq"].(float64) < float64(last) {
		t.Errorf("/readyz once caught up: %v", body)
	}
	fams = scrape(t, ctx, addr)
	expect(t, fams, 0, "ledger_projection_lag_messages", "partition", part)
	expect(t, fams, 0, "ledger_projection_lag_seconds", "partition", part)
}

// A standalone projector serves the same endpoints: ready once caught up,
// following every partition, counting the events it folded.
func TestStandaloneProjectorHTTP(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	l := ledgertest.StartLedger(t, ledger.Config{})
	nc := ledgertest.Connect(t, l.ClientURL())
	c, err := client.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := c.RecordUsage(ctx, usage("p1", "acme", time.Now(), 5, 5), usage("p2", "acme", time.Now(), 5, 5), usage("p3", "acme", time.Now(), 5, 5))
	if err != nil {
		t.Fatal(err)
	}
	pctx, stop := context.WithCancel(ctx)
	addrs := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- ledger.RunProjector(pctx, ledger.ProjectorConfig{NATSURL: l.ClientURL(), DataDir: t.TempDir(), Member: "proj-http", HTTP: "127.0.0.1:0", OnHTTP: func(a string) { addrs <- a }})
	}()
	var addr string
	select {
	case addr = <-addrs:
	case err := <-done:
		t.Fatalf("projector: %v", err)
	case <-ctx.Done():
		t.Fatal("the projector's HTTP listener never came up")
	}
	ledgertest.Eventually(t, 10*time.Second, "projector ready", func() bool {
		code, _ := readyz(t, ctx, addr)
		return code == http.StatusOK
	})
	var fams map[string]*dto.MetricFamily
	ledgertest.Eventually(t, 10*time.Second, "projector folded the usage", func() bool {
		fams = scrape(t, ctx, addr)
		v, _ := value(fams, "ledger_projection_applied_sequence", "partition", "0")
		return v >= float64(rec.Seq)
	})
	expect(t, fams, 3, "ledger_projection_events_ingested_total")
	if n := sum(fams, "ledger_partition_state"); n != events.Partitions {
		t.Errorf("%v partitions in a state, want %d", n, events.Partitions)
	}
	for p := range events.Partitions {
		expect(t, fams, 1, "ledger_partition_state", "partition", fmt.Sprint(p), "state", "follower")
	}
	if _, ok := value(fams, "ledger_decisions_total"); ok {
		t.Error("a projector counts decisions")
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
