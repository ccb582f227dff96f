package dashboard_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ledgerworks/ledger/api"
	"github.com/ledgerworks/ledger/auth"
	"github.com/ledgerworks/ledger/dashboard"
)

// fakeSource holds tenants with one limit each, whose used the test sets.
type fakeSource struct {
	mu      sync.Mutex
	used    map[string]int64
	changed chan struct{}
}

func newFakeSource(tenants ...string) *fakeSource {
	f := &fakeSource{used: map[string]int64{}, changed: make(chan struct{})}
	for _, t := range tenants {
		f.used[t] = 0
	}
	return f
}

func (f *fakeSource) setUsed(tenant string, n int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.used[tenant] = n
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeSource) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

func (f *fakeSource) Tenants(_ context.Context, q dashboard.TenantQuery) (dashboard.TenantList, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var names []string
	for n := range f.used {
		if strings.HasPrefix(n, q.Prefix) && n > q.After {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	list := dashboard.TenantList{Denials: []dashboard.Denial{{Tenant: "acme", Code: "quota_exceeded"}, {Tenant: "globex", Code: "retry_later"}}}
	if len(names) > q.Limit {
		names, list.More = names[:q.Limit], true
	}
	for _, n := range names {
		list.Tenants = append(list.Tenants, dashboard.TenantSummary{Name: n, Quotas: 1})
	}
	return list, nil
}

func (f *fakeSource) Tenant(_ context.Context, tenant string) (dashboard.TenantView, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	used, ok := f.used[tenant]
	v := dashboard.TenantView{Tenant: tenant, Known: ok}
	if ok {
		v.Quotas = []dashboard.QuotaView{{ID: "daily", Splits: []dashboard.SplitView{{Limits: []api.LimitStatus{{Quota: "daily", Metric: "tokens", Limit: 1000, Used: used, Remaining: 1000 - used}}}}}}
	}
	return v, nil
}

func (f *fakeSource) Partitions(context.Context) (dashboard.PartitionsView, error) {
	return dashboard.PartitionsView{Member: "m1", Partitions: []dashboard.PartitionView{{Partition: 0, Owner: "m1", Epoch: 3}}}, nil
}

// client is a browser stand-in: a cookie jar and the server's origin.
type client struct {
	t    *testing.T
	base string
	hc   *http.Client
}

func newClient(t *testing.T, srv *httptest.Server) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, base: srv.URL, hc: &http.Client{Jar: jar, Timeout: 10 * time.Second}}
}

func (c *client) get(path string) (int, string, http.Header) {
	c.t.Helper()
	resp, err := c.hc.Get(c.base + path)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func (c *client) login(token, origin string) (int, string, *http.Response) {
	c.t.Helper()
	req, _ := http.NewRequest("POST", c.base+"/login", strings.NewReader(fmt.Sprintf(`{"token":%q}`, token)))
	req.Header.Set("Content-Type", "application/json")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp
}

// TestDashboardPagesAndHeaders: the page at / and at every tenant's URL,
// its assets, and the headers that keep it to itself.
func TestDashboardPagesAndHeaders(t *testing.T) {
	srv := httptest.NewServer(dashboard.New(newFakeSource("acme"), dashboard.Options{}))
	defer srv.Close()
	c := newClient(t, srv)
	for _, p := range []string{"/", "/tenants/acme", "/tenants/does-not-exist"} {
		code, body, h := c.get(p)
		if code != 200 || !strings.Contains(body, `<script src="/assets/app.js"`) {
			t.Errorf("GET %s: %d %.80q", p, code, body)
		}
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || strings.Contains(csp, "unsafe") {
			t.Errorf("GET %s: CSP %q", p, csp)
		}
		if h.Get("X-Frame-Options") != "DENY" || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: headers %v", p, h)
		}
	}
	for p, ctype := range map[string]string{"/assets/app.js": "javascript", "/assets/app.css": "text/css"} {
		code, body, h := c.get(p)
		if code != 200 || len(body) < 1000 || !strings.Contains(h.Get("Content-Type"), ctype) || h.Get("ETag") == "" {
			t.Errorf("GET %s: %d, %d bytes, %v", p, code, len(body), h)
		}
	}
	for _, p := range []string{"/assets/", "/assets/index.html", "/assets/nope.js", "/nope", "/tenants/", "/tenants/a/b"} {
		if code, _, _ := c.get(p); code != 404 {
			t.Errorf("GET %s: %d, want 404", p, code)
		}
	}
	// Nothing in the page may come from elsewhere.
	for _, p := range []string{"/", "/assets/app.js", "/assets/app.css"} {
		_, body, _ := c.get(p)
		for _, bad := range []string{"http://", "https://", "//cdn", "innerHTML", "eval("} {
			if strings.Contains(body, bad) {
				t.Errorf("%s contains %q", p, bad)
			}
		}
	}
}

// TestDashboardOpen: without users, no sign-in, every tenant.
func TestDashboardOpen(t *testing.T) {
	srv := httptest.NewServer(dashboard.New(newFakeSource("acme", "globex"), dashboard.Options{}))
	defer srv.Close()
	c := newClient(t, srv)
	code, body, _ := c.get("/api/session")
	if code != 200 || !strings.Contains(body, `"signed_in":true`) || !strings.Contains(body, `"auth_required":false`) || !strings.Contains(body, "Authentication is off") {
		t.Errorf("session: %d %s", code, body)
	}
	var list dashboard.TenantList
	code, body, _ = c.get("/api/tenants?limit=1")
	if err := json.Unmarshal([]byte(body), &list); err != nil || code != 200 || len(list.Tenants) != 1 || list.Tenants[0].Name != "acme" || !list.More {
		t.Errorf("tenants page 1: %d %s", code, body)
	}
	code, body, _ = c.get("/api/tenants?limit=1&after=acme")
	if err := json.Unmarshal([]byte(body), &list); err != nil || code != 200 || len(list.Tenants) != 1 || list.Tenants[0].Name != "globex" || list.More {
		t.Errorf("tenants page 2: %d %s", code, body)
	}
	if code, body, _ := c.get("/api/tenants/globex"); code != 200 || !strings.Contains(body, `"used":0`) {
		t.Errorf("globex: %d %s", code, body)
	}
	for _, p := range []string{"/api/tenants/a.b", "/api/tenants?limit=x", "/api/events?tenant=a*"} {
		if code, _, _ := c.get(p); code != 400 {
			t.Errorf("GET %s: %d, want 400", p, code)
		}
	}
}

// TestDashboardAuth: with users, only an admin's or auditor's valid token
// signs in, through a cookie the page's script cannot read; an admin of
// one tenant sees only it; a revoked user is out at the next request.
func TestDashboardAuth(t *testing.T) {
	ids := map[string]*auth.Identity{}
	for _, n := range []string{"acme-admin", "auditor", "root", "acme-svc", "stranger"} {
		id, err := auth.NewIdentity()
		if err != nil {
			t.Fatal(err)
		}
		ids[n] = id
	}
	var mu sync.Mutex
	users := []auth.User{
		{Name: "acme-admin", Role: auth.RoleAdmin, Tenant: "acme", NKey: ids["acme-admin"].PublicKey()},
		{Name: "auditor", Role: auth.RoleAuditor, NKey: ids["auditor"].PublicKey()},
		{Name: "root", Role: auth.RoleAdmin, NKey: ids["root"].PublicKey()},
		{Name: "acme-svc", Role: auth.RoleService, Tenant: "acme", NKey: ids["acme-svc"].PublicKey()},
	}
	src := newFakeSource("acme", "acme2", "globex")
	h := dashboard.New(src, dashboard.Options{Users: func() []auth.User {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(users)
	}, MinInterval: time.Millisecond, Refresh: time.Hour})
	srv := httptest.NewServer(h)
	defer srv.Close()
	token := func(name string, ttl time.Duration) string {
		tok, _, err := auth.NewToken(ids[name], ttl, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	c := newClient(t, srv)
	if code, body, _ := c.get("/api/session"); code != 200 || !strings.Contains(body, `"auth_required":true`) || !strings.Contains(body, `"signed_in":false`) {
		t.Errorf("session before sign-in: %d %s", code, body)
	}
	for _, p := range []string{"/api/tenants", "/api/tenants/acme", "/api/partitions", "/api/events"} {
		if code, _, _ := c.get(p); code != 401 {
			t.Errorf("GET %s before sign-in: %d, want 401", p, code)
		}
	}
	if code, _, _ := c.get("/"); code != 200 {
		t.Errorf("the page itself (with its sign-in form): %d", code)
	}
	expired, _, _ := auth.NewToken(ids["auditor"], time.Minute, time.Now().Add(-time.Hour))
	for name, tok := range map[string]string{
		"garbage":  "hello",
		"service":  token("acme-svc", time.Hour),
		"stranger": token("stranger", time.Hour),
		"expired":  expired,
	} {
		code, body, resp := c.login(tok, "")
		if code != 401 || len(resp.Cookies()) != 0 || !strings.Contains(body, `"error"`) {
			t.Errorf("sign-in with %s token: %d %s %v", name, code, body, resp.Cookies())
		}
	}
	if code, _, _ := c.login(token("root", time.Hour), "http://evil.example"); code != 403 {
		t.Errorf("sign-in posted from another origin: %d, want 403", code)
	}

	// An admin of acme.
	code, body, resp := c.login(token("acme-admin", time.Hour), srv.URL)
	if code != 200 || !strings.Contains(body, `"tenant":"acme"`) {
		t.Fatalf("acme admin sign-in: %d %s", code, body)
	}
	ck := resp.Cookies()
	if len(ck) != 1 || !ck[0].HttpOnly || ck[0].SameSite != http.SameSiteStrictMode || ck[0].Path != "/" || ck[0].MaxAge <= 0 {
		t.Fatalf("cookie %+v", ck)
	}
	var list dashboard.TenantList
	code, body, _ = c.get("/api/tenants")
	if err := json.Unmarshal([]byte(body), &list); err != nil || code != 200 || len(list.Tenants) != 1 || list.Tenants[0].Name != "acme" || list.More ||
		len(list.Denials) != 1 || list.Denials[0].Tenant != "acme" {
		t.Errorf("acme admin's tenants: %d %s", code, body)
	}
	if code, body, _ = c.get("/api/tenants?prefix=glob"); code != 200 || !strings.Contains(body, `"tenants":[]`) {
		t.Errorf("acme admin's tenants starting with glob: %d %s", code, body)
	}
	if code, _, _ := c.get("/api/tenants/acme"); code != 200 {
		t.Errorf("acme admin reads acme: %d", code)
	}
	for _, p := range []string{"/api/tenants/globex", "/api/tenants/acme2", "/api/events?tenant=globex"} {
		if code, body, _ := c.get(p); code != 403 || !strings.Contains(body, "acme only") {
			t.Errorf("acme admin GET %s: %d %s, want 403", p, code, body)
		}
	}

	// An auditor and an admin of all see everything.
	for _, who := range []string{"auditor", "root"} {
		c := newClient(t, srv)
		if code, body, _ := c.login(token(who, time.Hour), ""); code != 200 {
			t.Fatalf("%s sign-in: %d %s", who, code, body)
		}
		code, body, _ := c.get("/api/tenants")
		if err := json.Unmarshal([]byte(body), &list); err != nil || code != 200 || len(list.Tenants) != 3 || len(list.Denials) != 2 {
			t.Errorf("%s's tenants: %d %s", who, code, body)
		}
		if code, _, _ := c.get("/api/tenants/globex"); code != 200 {
			t.Errorf("%s reads globex: %d", who, code)
		}
	}

	// A live view of acme, then the admin is revoked: the stream says so
	// and ends, and the next request is refused.
	req, _ := http.NewRequest("GET", srv.URL+"/api/events?tenant=acme", nil)
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("events: %d %s", resp.StatusCode, ct)
	}
	events := readEvents(resp.Body)
	next := func(want string) string {
		t.Helper()
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("stream ended waiting for %s", want)
			}
			if !strings.HasPrefix(ev, want) {
				t.Fatalf("event %q, want %s", ev, want)
			}
			return ev
		case <-time.After(5 * time.Second):
			t.Fatalf("no %s event", want)
		}
		return ""
	}
	if ev := next("tenant"); !strings.Contains(ev, `"used":0`) {
		t.Errorf("first view %s", ev)
	}
	next("partitions")
	src.setUsed("acme", 250)
	if ev := next("tenant"); !strings.Contains(ev, `"used":250`) {
		t.Errorf("view after usage %s", ev)
	}
	mu.Lock()
	users = users[1:]
	mu.Unlock()
	src.setUsed("acme", 300) // wakes the stream, which checks the token again
	if ev := next("signedout"); !strings.Contains(ev, "not a user") {
		t.Errorf("signed-out event %s", ev)
	}
	if _, ok := <-events; ok {
		t.Error("stream goes on after the user was revoked")
	}
	if code, _, _ := c.get("/api/tenants/acme"); code != 401 {
		t.Errorf("revoked admin reads acme: %d, want 401", code)
	}
}

// readEvents parses a text/event-stream into "name data" strings.
func readEvents(r io.Reader) <-chan string {
	out := make(chan string, 16)
	go func() {
		defer close(out)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var name, data string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if name != "" {
					out <- name + " " + data
				}
				name, data = "", ""
			case strings.HasPrefix(line, "event: "):
				name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return out
}

// TestDashboardHeartbeat: an idle stream gets comment lines.
func TestDashboardHeartbeat(t *testing.T) {
	srv := httptest.NewServer(dashboard.New(newFakeSource("acme"), dashboard.Options{Heartbeat: 50 * time.Millisecond, Refresh: time.Hour}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/events?" + url.Values{"tenant": {"acme"}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	deadline := time.AfterFunc(5*time.Second, func() { resp.Body.Close() })
	defer deadline.Stop()
	beats := 0
	for sc.Scan() && beats < 2 {
		if sc.Text() == ": heartbeat" {
			beats++
		}
	}
	if beats < 2 {
		t.Errorf("%d heartbeats", beats)
	}
}
