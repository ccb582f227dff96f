package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ledgerworks/ledger/api"
	"github.com/ledgerworks/ledger/auth"
	"github.com/ledgerworks/ledger/client"
	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/internal/ledgertest"
	"github.com/ledgerworks/ledger/ledger"
)

// The dashboard in a real browser: headless Chromium (Debian's chromium
// package, which .ci/run installs) against a live ledger. These tests never
// skip: a machine without a browser fails them and says what to install.

// envUpdateScreenshots, set to 1, makes TestDashboardBrowser write its
// screenshots into docs/ (docs/OPERATIONS.md shows them).
const envUpdateScreenshots = "LEDGER_UPDATE_SCREENSHOT"

// browserDeadline bounds a whole browser session.
const browserDeadline = 90 * time.Second

// chromiumPath finds the browser: CHROME_PATH, else a Chromium on PATH.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROME_PATH"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium to test the dashboard with (CHROME_PATH is unset and none of chromium, chromium-browser, google-chrome is on PATH): install Debian's chromium (apt-get install chromium); .ci/run does")
	return ""
}

// pageProblems collects what a page reports as wrong: uncaught exceptions,
// console.error calls, and error entries of the browser's own log.
type pageProblems struct {
	mu   sync.Mutex
	msgs []chromedp.ConsoleMessage
}

func (p *pageProblems) errors(allowNetwork bool) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, m := range p.msgs {
		if m.Type != chromedp.ConsoleError && m.Type != chromedp.ConsoleException {
			continue
		}
		if allowNetwork && m.Source == "network" {
			continue // a refused request the test asked for (401, 403)
		}
		out = append(out, fmt.Sprintf("%s at %s:%d", m, m.URL, m.Line))
	}
	return out
}

// startBrowser starts headless Chromium and returns a tab's context, ended
// at cleanup, and what its pages report as wrong.
func startBrowser(t *testing.T) (context.Context, *pageProblems) {
	t.Helper()
	path := chromiumPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), browserDeadline)
	t.Cleanup(cancel)
	var out strings.Builder
	actx, acancel := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox, // containers run the tests as root
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1440, 900),
		chromedp.CombinedOutput(&out),
	)...)
	t.Cleanup(acancel)
	tab, tcancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(tcancel)
	probs := &pageProblems{}
	messages := chromedp.Console(tab) // starts the browser
	if _, err := chromedp.Run(tab, chromedp.Evaluate[int]("1")); err != nil {
		t.Fatalf("Chromium (%s) did not start: %v\nits output:\n%s\ninstall Debian's chromium (apt-get install chromium); .ci/run does", path, err, out.String())
	}
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			probs.mu.Lock()
			probs.msgs = append(probs.msgs, m)
			probs.mu.Unlock()
		}
	}()
	return tab, probs
}

// waitFor polls a JavaScript expression in the page until it is true.
func waitFor(t *testing.T, tab context.Context, what, expr string, within time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, within)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		body, _ := chromedp.Run(tab, chromedp.Evaluate[string]("document.body.innerText"))
		t.Fatalf("waiting for %s (%s): %v\nthe page shows:\n%s", what, expr, err, body)
	}
}

func eval[T any](t *testing.T, tab context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(tab, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// screenshot saves a full-page screenshot in the test's directory, and,
// for docs, in docs/ when envUpdateScreenshots is set, and logs where.
func screenshot(t *testing.T, tab context.Context, name string, docs bool) {
	t.Helper()
	png, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	paths := []string{filepath.Join(t.TempDir(), name)}
	if docs && os.Getenv(envUpdateScreenshots) == "1" {
		paths = append(paths, filepath.Join("..", "docs", name))
	}
	for _, p := range paths {
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		abs, _ := filepath.Abs(p)
		t.Logf("screenshot of the dashboard: %s", abs)
	}
}

// usageRow is the page's "used / limit" text of a quota's limit.
func usageRow(quota, metric, split string) string {
	return fmt.Sprintf(`(document.querySelector('tr.limit[data-quota=%q][data-metric=%q][data-split=%q] .usage') || {}).textContent`, quota, metric, split)
}

// TestDashboardBrowser: a live ledger, usage recorded, the tenant's page
// in Chromium shows the exact used/limit numbers, and more usage shows up
// on the page live, without a reload; no script error on any page.
func TestDashboardBrowser(t *testing.T) {
	l := ledgertest.StartLedger(t, ledger.Config{HTTP: "127.0.0.1:0"})
	base := "http://" + l.HTTPAddr()
	nc := ledgertest.Connect(t, l.ClientURL())
	c := newClient(t, nc)
	ctx, cancel := context.WithTimeout(context.Background(), browserDeadline)
	defer cancel()
	day := events.Window{Kind: events.Calendar, Unit: events.UnitDay}
	record := func(tenant, id string, dims events.Dimensions, a events.Amounts) {
		t.Helper()
		rec, err := c.RecordUsage(ctx, events.New(id, tenant, time.Now(), dims, &events.UsageRecorded{Amounts: a}))
		if err != nil {
			t.Fatalf("record %s: %v", id, err)
		}
		// Usage is answered once appended; the decisions below must see it.
		if err := l.Projector().WaitApplied(ctx, rec.Seq); err != nil {
			t.Fatalf("record %s: %v", id, err)
		}
	}
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	// acme: the quota the test reads, and around it what an SRE sees on
	// a busy tenant: a split quota with one user warned and one full, a
	// concurrency limit with open reservations, a retry signal, a
	// workflow, denials.
	_, err := c.SetQuota(ctx, "acme", events.Quota{ID: "daily-tokens", Limits: []events.Limit{{Metric: events.MetricTokens, Max: 1000, Window: day}}})
	must("set daily-tokens", err)
	_, err = c.SetQuota(ctx, "acme", events.Quota{ID: "per-user", Split: []string{events.DimUser}, WarnPercent: 80,
		Limits: []events.Limit{{Metric: events.MetricRequests, Max: 20, Window: events.Window{Kind: events.Sliding, Seconds: 3600}}}})
	must("set per-user", err)
	_, err = c.SetQuota(ctx, "acme", events.Quota{ID: "gpt-4o-concurrency", Scope: map[string]string{"model": "gpt-4o"},
		Limits: []events.Limit{{Metric: events.MetricConcurrent, Max: 4}}})
	must("set concurrency", err)
	record("acme", "u-1", events.Dimensions{events.DimUser: "ana"}, events.Amounts{Tokens: 250, Requests: 17})
	record("acme", "u-2", events.Dimensions{events.DimUser: "bo"}, events.Amounts{Requests: 5})
	record("acme", "u-3", events.Dimensions{events.DimUser: "carla"}, events.Amounts{Requests: 20})
	for i := range 2 {
		_, err := c.Reserve(ctx, "acme", events.Dimensions{events.DimUser: "bo", "model": "gpt-4o"}, events.Amounts{}, client.ReserveOptions{TTL: 10 * time.Minute, ID: fmt.Sprintf("run-%d", i+1)})
		must("reserve", err)
	}
	_, err = c.Consume(ctx, "acme", "denied-1", events.Dimensions{events.DimUser: "carla"}, events.Amounts{Requests: 1})
	if !errors.Is(err, events.ErrQuotaExceeded) {
		t.Fatalf("carla's consume past her limit: %v, want quota_exceeded", err)
	}
	_, err = c.SignalRetry(ctx, api.RetrySignalRequest{Tenant: "acme", Key: events.Dimensions{"model": "gpt-4o", "location": "us-east5"}, RetryDelay: "90s", QuotaMetric: "requests_per_minute"})
	must("signal retry", err)
	_, err = c.BeginWorkflow(ctx, "acme", "nightly-report", events.Dimensions{events.DimUser: "ana"})
	must("begin workflow", err)
	for _, tenant := range []string{"globex", "initech"} {
		_, err := c.SetQuota(ctx, tenant, events.Quota{ID: "daily-tokens", Limits: []events.Limit{{Metric: events.MetricTokens, Max: 5000, Window: day}}})
		must("set "+tenant+"'s quota", err)
	}
	record("globex", "g-1", nil, events.Amounts{Tokens: 4200})
	record("initech", "i-1", nil, events.Amounts{Tokens: 600})

	tab, probs := startBrowser(t)
	must("open the tenant's page", chromedp.Do(tab, chromedp.Navigate(base+"/tenants/acme")))
	waitFor(t, tab, "acme's used/limit of 250 / 1,000", usageRow("daily-tokens", "tokens", "")+` === "250 / 1,000"`, 20*time.Second)
	if got := eval[string](t, tab, `document.querySelector('tr.limit[data-quota="daily-tokens"]').dataset.used + "/" + document.querySelector('tr.limit[data-quota="daily-tokens"]').dataset.limit`); got != "250/1000" {
		t.Errorf("the row's numbers: %s, want 250/1000", got)
	}
	if got := eval[string](t, tab, usageRow("per-user", "requests", "carla")); got != "20 / 20" {
		t.Errorf("carla's requests: %q", got)
	}
	loadedAt := eval[float64](t, tab, `window.__testMark = window.ledgerDashboard.loadedAt`)
	// moreSamples waits until the page's charts have taken n more points,
	// so that what the screenshot shows is spread over time.
	moreSamples := func(what string, n int) {
		t.Helper()
		have := eval[int](t, tab, `window.ledgerDashboard.samples`)
		waitFor(t, tab, what, fmt.Sprintf(`window.ledgerDashboard.samples >= %d`, have+n), 20*time.Second)
	}

	// More usage: the page shows it live, in the same document.
	for i, want := range []string{"350 / 1,000", "400 / 1,000", "450 / 1,000"} {
		tokens := int64(100)
		if i > 0 {
			tokens = 50
			moreSamples("the chart to sample the last step", 2)
		}
		record("acme", fmt.Sprintf("more-%d", i), events.Dimensions{events.DimUser: "ana"}, events.Amounts{Tokens: tokens})
		waitFor(t, tab, "the page to show "+want+" live", usageRow("daily-tokens", "tokens", "")+` === "`+want+`"`, 10*time.Second)
	}
	if same := eval[bool](t, tab, fmt.Sprintf(`window.__testMark === %v && window.ledgerDashboard.loadedAt === %v && location.pathname === "/tenants/acme" && performance.getEntriesByType("navigation").length === 1`, loadedAt, loadedAt)); !same {
		t.Error("the page was reloaded or navigated away to show the new usage")
	}
	if n := eval[int](t, tab, `window.ledgerDashboard.updates`); n < 3 {
		t.Errorf("%d live updates drawn", n)
	}
	if got := eval[string](t, tab, `document.querySelector('#tdenials-body tbody').textContent`); !strings.Contains(got, "quota_exceeded") || !strings.Contains(got, "per-user") {
		t.Errorf("last denials: %q", got)
	}
	moreSamples("one more chart sample after the last step", 2)
	screenshot(t, tab, "dashboard.png", true)

	// The overview: every tenant and partition.
	must("open the overview", chromedp.Do(tab, chromedp.Navigate(base+"/")))
	waitFor(t, tab, "the tenant list", `document.querySelectorAll('tr[data-tenant]').length === 3`, 20*time.Second)
	waitFor(t, tab, "the partitions", `document.querySelectorAll('.ptile[data-partition]').length === 16`, 20*time.Second)
	if got := eval[string](t, tab, `[...document.querySelectorAll('tr[data-tenant]')].map(r => r.dataset.tenant).join(",")`); got != "acme,globex,initech" {
		t.Errorf("tenants listed: %s", got)
	}
	must("filter the tenants", chromedp.Do(tab, chromedp.SendKeys("#filter", "glo")))
	waitFor(t, tab, "the filtered list", `[...document.querySelectorAll('tr[data-tenant]')].map(r => r.dataset.tenant).join(",") === "globex"`, 10*time.Second)
	eval[bool](t, tab, `(f => { f.value = ""; return f.dispatchEvent(new Event("input")) })(document.getElementById("filter"))`)
	waitFor(t, tab, "the whole list again", `document.querySelectorAll('tr[data-tenant]').length === 3`, 10*time.Second)
	// Some traffic for the throughput chart to draw, in rounds the chart
	// samples apart.
	for round := range 3 {
		for i := range 10 {
			if _, err := c.Check(ctx, api.CheckRequest{Tenant: "acme", Dims: events.Dimensions{events.DimUser: "bo"}}); err != nil {
				t.Fatal(err)
			}
			if i%3 == 0 {
				record("initech", fmt.Sprintf("i-more-%d-%d", round, i), nil, events.Amounts{Tokens: 10})
			}
		}
		moreSamples("the throughput chart to sample the round", 1)
	}
	moreSamples("one more throughput sample", 1)
	screenshot(t, tab, "dashboard-overview.png", true)

	if errs := probs.errors(false); len(errs) > 0 {
		t.Errorf("the pages reported errors:\n%s", strings.Join(errs, "\n"))
	}
}

// TestDashboardBrowserAuth: with a credentials file the page asks for a
// token; a bad one is refused; an admin of acme sees acme, and is refused
// globex.
func TestDashboardBrowserAuth(t *testing.T) {
	dir := t.TempDir()
	path, seeds := credentials(t, dir, tableUsers)
	l := ledgertest.StartLedger(t, ledger.Config{AuthFile: path, DataDir: filepath.Join(dir, "data"), HTTP: "127.0.0.1:0"})
	seedUsage(t, l.ClientURL(), seeds) // acme and globex: quota cap, 100 tokens used
	base := "http://" + l.HTTPAddr()
	id, err := auth.LoadIdentity(seeds["acme-admin"])
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := auth.NewToken(id, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	svcID, err := auth.LoadIdentity(seeds["acme-service"])
	if err != nil {
		t.Fatal(err)
	}
	svcToken, _, err := auth.NewToken(svcID, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}

	tab, probs := startBrowser(t)
	if err := chromedp.Do(tab, chromedp.Navigate(base+"/tenants/acme")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, tab, "the sign-in form", `!document.getElementById('login').hidden && document.getElementById('app').hidden`, 20*time.Second)
	signIn := func(tok string) {
		t.Helper()
		if err := chromedp.Do(tab, chromedp.SetValue("#token", tok), chromedp.Click("#login-form button[type=submit]")); err != nil {
			t.Fatal(err)
		}
	}
	signIn("not-a-token")
	waitFor(t, tab, "a bad token refused", `document.getElementById('login-error').textContent.includes('Refused')`, 10*time.Second)
	screenshot(t, tab, "dashboard-login.png", false)
	signIn(svcToken)
	waitFor(t, tab, "a service's token refused", `document.getElementById('login-error').textContent.includes('may not sign in')`, 10*time.Second)
	if got := eval[int](t, tab, `fetch('/api/tenants/acme').then(r => r.status)`); got != 401 {
		t.Errorf("the API before sign-in: %d, want 401", got)
	}

	signIn(token)
	waitFor(t, tab, "acme's quota after sign-in", usageRow("cap", "tokens", "")+` === "100 / 1,000"`, 20*time.Second)
	if who := eval[string](t, tab, `document.getElementById('who').textContent`); !strings.Contains(who, "acme-admin") || !strings.Contains(who, "admin of acme") {
		t.Errorf("signed in as %q", who)
	}
	if ck := eval[string](t, tab, `document.cookie`); ck != "" {
		t.Errorf("the page's script reads the cookie %q: it must be HttpOnly", ck)
	}
	if got := eval[int](t, tab, `fetch('/api/tenants/globex').then(r => r.status)`); got != 403 {
		t.Errorf("acme's admin asks for globex: %d, want 403", got)
	}
	if got := eval[int](t, tab, `fetch('/api/events?tenant=globex').then(r => r.status)`); got != 403 {
		t.Errorf("acme's admin asks for globex's live view: %d, want 403", got)
	}
	if err := chromedp.Do(tab, chromedp.Navigate(base+"/tenants/globex")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, tab, "globex refused", `!!document.getElementById('forbidden') && document.getElementById('forbidden').textContent.includes('acme only')`, 20*time.Second)
	if err := chromedp.Do(tab, chromedp.Navigate(base+"/")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, tab, "the tenant list", `document.querySelectorAll('tr[data-tenant]').length >= 1`, 20*time.Second)
	if got := eval[string](t, tab, `[...document.querySelectorAll('tr[data-tenant]')].map(r => r.dataset.tenant).join(",")`); got != "acme" {
		t.Errorf("acme's admin sees tenants %s, want acme only", got)
	}
	if errs := probs.errors(true); len(errs) > 0 {
		t.Errorf("the pages reported errors:\n%s", strings.Join(errs, "\n"))
	}
}
