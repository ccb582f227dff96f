package ledger_test

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ledgerworks/ledger/api"
	"github.com/ledgerworks/ledger/auth"
	"github.com/ledgerworks/ledger/client"
	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/internal/ledgertest"
	"github.com/ledgerworks/ledger/ledger"
	"github.com/ledgerworks/ledger/replay"
)

// The users of the permission table: every role, confined to acme where
// the role takes a tenant, plus globex's own service and producer, whose
// state the acme users must not be able to touch.
var tableUsers = []auth.User{
	{Name: "acme-producer", Role: auth.RoleProducer, Tenant: "acme"},
	{Name: "acme-service", Role: auth.RoleService, Tenant: "acme"},
	{Name: "acme-admin", Role: auth.RoleAdmin, Tenant: "acme"},
	{Name: "admin", Role: auth.RoleAdmin},
	{Name: "auditor", Role: auth.RoleAuditor},
	{Name: "globex-service", Role: auth.RoleService, Tenant: "globex"},
	{Name: "globex-producer", Role: auth.RoleProducer, Tenant: "globex"},
}

// credentials writes a credentials file of users into dir and each user's
// seed file beside it, and returns the file's path and the seed files by
// user name.
func credentials(t *testing.T, dir string, users []auth.User) (string, map[string]string) {
	t.Helper()
	f := &auth.File{}
	seeds := map[string]string{}
	for _, u := range users {
		id, err := auth.NewIdentity()
		if err != nil {
			t.Fatal(err)
		}
		u.NKey = id.PublicKey()
		if err := f.Add(u); err != nil {
			t.Fatal(err)
		}
		seeds[u.Name] = filepath.Join(dir, u.Name+".nk")
		if err := id.WriteSeed(seeds[u.Name], u); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "auth.json")
	if err := f.Save(path); err != nil {
		t.Fatal(err)
	}
	return path, seeds
}

// asUser is a connection signed in as one user that records the
// permission violations the server reports to it.
type asUser struct {
	name string
	nc   *nats.Conn
	errs chan error
}

func connectAs(t *testing.T, url, name, seed string) *asUser {
	t.Helper()
	u := &asUser{name: name, errs: make(chan error, 64)}
	nc, err := auth.Credentials{NKeyFile: seed}.Connect(url, nats.Name(name), nats.PermissionErrOnSubscribe(true),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case u.errs <- err:
			default:
			}
		}))
	if err != nil {
		t.Fatalf("connect as %s: %v", name, err)
	}
	t.Cleanup(nc.Close)
	u.nc = nc
	return u
}

// outcome of one attempt: the server refused it (a permission violation)
// or something answered it.
type outcome int

const (
	refused outcome = iota
	answered
)

func (o outcome) String() string { return [...]string{"refused", "answered"}[o] }

// attempt sends body to subject as a request and waits for an answer or
// a permission violation, whichever comes first.
func (u *asUser) attempt(t *testing.T, subject, body string) (outcome, *nats.Msg) {
	t.Helper()
	for len(u.errs) > 0 {
		<-u.errs
	}
	replies := make(chan *nats.Msg, 1)
	inbox := u.nc.NewInbox()
	sub, err := u.nc.ChanSubscribe(inbox, replies)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := u.nc.PublishRequest(subject, inbox, []byte(body)); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-replies:
		return answered, m
	case err := <-u.errs:
		if !errors.Is(err, nats.ErrPermissionViolation) {
			t.Fatalf("%s: %s: %v", u.name, subject, err)
		}
		return refused, nil
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: %s: neither answered nor refused within 5s", u.name, subject)
		return 0, nil
	}
}

// probe is one thing a user may try: a request operation of a tenant, a
// publish to the stream, or a subject of the ledger's or JetStream's own.
type probe struct {
	name    string
	tenant  bool // the subject names a tenant
	subject func(tenant string) string
	body    string
}

func probes() []probe {
	var ps []probe
	for _, op := range slices.Sorted(maps.Keys(api.Operations)) {
		ps = append(ps, probe{strings.TrimPrefix(op, api.SubjectPrefix+"."), true, func(t string) string { return api.TenantSubject(op, t) }, `{}`})
	}
	for _, class := range []string{events.ClassUsage, events.ClassDecision, events.ClassAdmin} {
		ps = append(ps, probe{"stream." + class, true, func(t string) string { return events.Subject(t, class) }, `{}`})
	}
	fixed := func(name, subject, body string) probe {
		return probe{name, false, func(string) string { return subject }, body}
	}
	return append(ps,
		fixed("js.info", "$JS.API.INFO", ``),
		fixed("js.stream.info", "$JS.API.STREAM.INFO.LEDGER", ``),
		fixed("js.direct.get", "$JS.API.DIRECT.GET.LEDGER", `{"seq":1}`),
		fixed("js.stream.delete", "$JS.API.STREAM.DELETE.LEDGER", ``),
		fixed("js.stream.purge", "$JS.API.STREAM.PURGE.LEDGER", `{}`),
		fixed("js.msg.delete", "$JS.API.STREAM.MSG.DELETE.LEDGER", `{"seq":1}`),
		fixed("js.stream.update", "$JS.API.STREAM.UPDATE.LEDGER", `{"name":"LEDGER","subjects":["ledger.ev.>"]}`),
		fixed("js.stream.create", "$JS.API.STREAM.CREATE.OTHER", `{"name":"OTHER","subjects":["other.>"]}`),
		fixed("js.consumer.create", "$JS.API.CONSUMER.CREATE.LEDGER", `{"stream_name":"LEDGER","config":{"deliver_subject":"$KV.LEDGER_OWNERS.p.0","ack_policy":"none"}}`),
		fixed("js.consumer.list", "$JS.API.CONSUMER.LIST.LEDGER", `{}`),
		fixed("kv.lease", "$KV.LEDGER_OWNERS.p.0", `{}`),
		fixed("kv.stream.delete", "$JS.API.STREAM.DELETE.KV_LEDGER_OWNERS", ``),
		fixed("cluster.status", api.SubjectClusterStatus, ``),
		fixed("cluster.handback", "ledger.cluster.handback.x", ``),
		fixed("micro.ping", "$SRV.PING."+api.ServiceName, ``),
	)
}

// mayDo is who may do what: per user, the probes it may send for its own
// tenant (acme), for another tenant (globex) and that name no tenant.
// Everything else is refused by the NATS server.
var mayDo = func() map[string]struct{ own, other, global []string } {
	reads := []string{"check", "usage.get", "quota.get", "quota.list", "retry.get", "workflow.list", "plan.get"}
	decide := []string{"consume", "reserve", "reconcile", "release", "batch", "retry.signal", "retry.clear", "workflow.begin", "workflow.step", "workflow.end", "action.limit"}
	admin := append([]string{"quota.set", "quota.delete", "plan.set", "counter.reset"}, reads...)
	status := []string{"cluster.status", "micro.ping"}
	return map[string]struct{ own, other, global []string }{
		"acme-producer": {own: []string{"usage.record", "stream.usage"}},
		"acme-service":  {own: append(decide, reads...)},
		"acme-admin":    {own: admin, global: status},
		"admin":         {own: admin, other: admin, global: status},
		"auditor":       {own: reads, other: reads, global: append([]string{"js.info", "js.stream.info", "js.direct.get"}, status...)},
	}
}()

// runPermissionTable signs in as each table user and sends every probe,
// checking each against mayDo.
func runPermissionTable(t *testing.T, url string, seeds map[string]string) {
	for _, name := range slices.Sorted(maps.Keys(mayDo)) {
		may := mayDo[name]
		t.Run(name, func(t *testing.T) {
			u := connectAs(t, url, name, seeds[name])
			for _, p := range probes() {
				cases := []struct {
					tenant string
					allow  []string
				}{{"", may.global}}
				if p.tenant {
					cases = []struct {
						tenant string
						allow  []string
					}{{"acme", may.own}, {"globex", may.other}}
				}
				for _, c := range cases {
					want := refused
					if slices.Contains(c.allow, p.name) {
						want = answered
					}
					if got, _ := u.attempt(t, p.subject(c.tenant), p.body); got != want {
						t.Errorf("%s %s %s: %s, want %s", name, p.name, c.tenant, got, want)
					}
				}
			}
		})
	}
}

// globexState is what globex's users see of it once the projection has
// folded the stream to after: its usage, quotas and a check, as JSON.
func globexState(t *testing.T, c *client.Client, after uint64) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	usage, err := c.Usage(ctx, "globex", after)
	if err != nil {
		t.Fatal(err)
	}
	quotas, err := c.ListQuotas(ctx, "globex")
	if err != nil {
		t.Fatal(err)
	}
	check, err := c.Check(ctx, api.CheckRequest{Tenant: "globex", Request: events.Amounts{Tokens: 1}, AfterSeq: after})
	if err != nil {
		t.Fatal(err)
	}
	for i := range check.Limits {
		check.Limits[i].ResetsIn = 0 // the clock's, not globex's
	}
	b, _ := json.Marshal([]any{usage.Totals, quotas, check.Allowed, check.Limits})
	return string(b)
}

func newClient(t *testing.T, nc *nats.Conn) *client.Client {
	t.Helper()
	c, err := client.New(nc, client.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// startAuthLedger starts an embedded ledger with authentication on and
// gives acme and globex a quota and some usage.
func startAuthLedger(t *testing.T) (*ledger.Ledger, string, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	path, seeds := credentials(t, dir, tableUsers)
	l := ledgertest.StartLedger(t, ledger.Config{AuthFile: path, DataDir: filepath.Join(dir, "data")})
	url := l.ClientURL()
	seedUsage(t, url, seeds)
	return l, path, seeds
}

// seedUsage gives acme and globex a quota (as the all-tenant admin) and
// records usage for each (as its producer).
func seedUsage(t *testing.T, url string, seeds map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin := newClient(t, connectAs(t, url, "admin", seeds["admin"]).nc)
	for _, tenant := range []string{"acme", "globex"} {
		if _, err := admin.SetQuota(ctx, tenant, events.Quota{ID: "cap", Limits: []events.Limit{dayLimit(events.MetricTokens, 1000)}}); err != nil {
			t.Fatalf("admin sets %s's quota: %v", tenant, err)
		}
		p, err := client.NewProducer(connectAs(t, url, tenant+"-producer", seeds[tenant+"-producer"]).nc, client.ProducerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Record(ctx, events.New(client.NewID(), tenant, time.Now(), events.Dimensions{events.DimUser: "ana"}, &events.UsageRecorded{Amounts: events.Amounts{Tokens: 100}})); err != nil {
			t.Fatal(err)
		}
		if err := p.Close(ctx); err != nil {
			t.Fatalf("%s's producer: %v", tenant, err)
		}
	}
}

// TestPermissionTable: every role, every operation, own and other tenant,
// against `ledger serve --auth`: what a role may do is answered, all else
// is refused by the NATS server.
func TestPermissionTable(t *testing.T) {
	l, _, seeds := startAuthLedger(t)
	runPermissionTable(t, l.ClientURL(), seeds)
}

// TestOtherTenantUntouched: acme's producer, service and admin try every
// operation on globex, and payloads that name globex on acme's subjects;
// globex's state and the stream are unchanged afterwards.
func TestOtherTenantUntouched(t *testing.T) {
	l, _, seeds := startAuthLedger(t)
	url := l.ClientURL()
	admin := newClient(t, connectAs(t, url, "admin", seeds["admin"]).nc)
	auditor := connectAs(t, url, "auditor", seeds["auditor"])
	seqBefore := lastSeqOf(t, auditor.nc)
	before := globexState(t, admin, seqBefore)

	valid := map[string]string{
		"check":         `{"request":{"tokens":1}}`,
		"reserve":       `{"reservation":"r1","estimate":{"tokens":900}}`,
		"consume":       `{"amounts":{"tokens":900}}`,
		"quota.set":     `{"quota":{"id":"cap","limits":[{"metric":"tokens","max":1,"window":{"kind":"calendar","unit":"day"}}]}}`,
		"quota.delete":  `{"id":"cap"}`,
		"counter.reset": `{"quota":"cap","reason":"x"}`,
	}
	for _, name := range []string{"acme-producer", "acme-service", "acme-admin"} {
		u := connectAs(t, url, name, seeds[name])
		for _, p := range probes() {
			if !p.tenant {
				continue
			}
			body := p.body
			if v, ok := valid[p.name]; ok {
				body = v
			}
			if got, _ := u.attempt(t, p.subject("globex"), body); got != refused {
				t.Errorf("%s %s on globex: %s, want refused", name, p.name, got)
			}
		}
	}
	// On its own subject, a payload naming globex is refused by the ledger
	// with a typed error.
	for _, c := range []struct{ user, op, body string }{
		{"acme-service", "check", `{"tenant":"globex","request":{"tokens":1}}`},
		{"acme-service", "reserve", `{"tenant":"globex","reservation":"r2","estimate":{"tokens":900}}`},
		{"acme-admin", "quota.set", `{"tenant":"globex","quota":{"id":"cap","limits":[{"metric":"tokens","max":1,"window":{"kind":"calendar","unit":"day"}}]}}`},
		{"acme-admin", "counter.reset", `{"tenant":"globex","quota":"cap","reason":"x"}`},
		{"acme-producer", "usage.record", `{"id":"x1","type":"usage.recorded.v1","tenant":"globex","data":{"tokens":900}}`},
	} {
		u := connectAs(t, url, c.user, seeds[c.user])
		got, m := u.attempt(t, api.TenantSubject(api.SubjectPrefix+"."+c.op, "acme"), c.body)
		if got != answered {
			t.Fatalf("%s %s: %s, want a typed error", c.user, c.op, got)
		}
		var reply api.ErrorReply
		if err := json.Unmarshal(m.Data, &reply); err != nil || reply.Error == nil || reply.Error.Code != events.CodeInvalidArgument {
			t.Errorf("%s %s naming globex: %s, want invalid_argument", c.user, c.op, m.Data)
		}
	}
	if after := globexState(t, admin, seqBefore); after != before {
		t.Errorf("globex changed:\nbefore %s\nafter  %s", before, after)
	}
	if seq := lastSeqOf(t, auditor.nc); seq != seqBefore {
		t.Errorf("stream last sequence %d, was %d: something was appended", seq, seqBefore)
	}
}

// TestEachRoleWorks: what each role is for works end to end with the Go
// client and the replay reader.
func TestEachRoleWorks(t *testing.T) {
	l, _, seeds := startAuthLedger(t)
	url := l.ClientURL()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	svc := newClient(t, connectAs(t, url, "acme-service", seeds["acme-service"]).nc)
	r, err := svc.Reserve(ctx, "acme", events.Dimensions{events.DimUser: "ana"}, events.Amounts{Tokens: 800}, client.ReserveOptions{})
	if err != nil {
		t.Fatalf("service reserves: %v", err)
	}
	if _, err := r.Reconcile(ctx, events.Amounts{Tokens: 700}); err != nil {
		t.Fatalf("service reconciles: %v", err)
	}
	// After the reconcile, which is answered once appended, is folded.
	last := lastSeqOf(t, connectAs(t, url, "auditor", seeds["auditor"]).nc)
	check, err := svc.Check(ctx, api.CheckRequest{Tenant: "acme", Request: events.Amounts{Tokens: 300}, AfterSeq: last})
	if err != nil {
		t.Fatal(err)
	}
	if check.Allowed { // 100 recorded + 700 reconciled + 300 > 1000
		t.Errorf("check of 300 tokens after 800 used of 1000: allowed")
	}

	adm := newClient(t, connectAs(t, url, "acme-admin", seeds["acme-admin"]).nc)
	if _, err := adm.SetQuota(ctx, "acme", events.Quota{ID: "cap", Limits: []events.Limit{dayLimit(events.MetricTokens, 5000)}}); err != nil {
		t.Fatalf("admin of acme sets acme's quota: %v", err)
	}
	usage, err := adm.Usage(ctx, "acme", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := usage.Totals[events.MetricTokens]; got != 800 {
		t.Errorf("acme's tokens: %d, want 800 (100 recorded by its producer + 700 reconciled)", got)
	}

	// The auditor reads the whole stream: every message the others made.
	aud := connectAs(t, url, "auditor", seeds["auditor"])
	js, err := jetstream.New(aud.nc)
	if err != nil {
		t.Fatal(err)
	}
	want := lastSeqOf(t, aud.nc)
	got, err := countStream(ctx, js)
	if err != nil {
		t.Fatalf("auditor reads the stream: %v", err)
	}
	if got != want {
		t.Errorf("auditor read %d messages, the stream has %d", got, want)
	}
}

// TestUnauthenticatedAndRevokedRefused: no credentials, a key the file
// does not list, and a revoked user are refused; the revoked user's open
// connection is closed once the running ledger sees the file change.
func TestUnauthenticatedAndRevokedRefused(t *testing.T) {
	l, path, seeds := startAuthLedger(t)
	url := l.ClientURL()
	if nc, err := nats.Connect(url); err == nil {
		nc.Close()
		t.Fatal("anonymous connection accepted")
	} else if !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("anonymous: %v, want an authorization violation", err)
	}
	stranger, err := auth.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	strangerSeed := filepath.Join(t.TempDir(), "stranger.nk")
	if err := stranger.WriteSeed(strangerSeed, auth.User{Name: "stranger", Role: auth.RoleAdmin}); err != nil {
		t.Fatal(err)
	}
	if _, err := (auth.Credentials{NKeyFile: strangerSeed}).Connect(url); !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("a key not in the file: %v, want an authorization violation", err)
	}

	closed := make(chan struct{})
	victim, err := auth.Credentials{NKeyFile: seeds["globex-service"]}.Connect(url, nats.NoReconnect(), nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
	if err != nil {
		t.Fatal(err)
	}
	defer victim.Close()
	f, err := auth.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Revoke("globex-service"); err != nil {
		t.Fatal(err)
	}
	if err := f.Save(path); err != nil {
		t.Fatal(err)
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the revoked user's connection is still open 10s after the file changed")
	}
	if _, err := (auth.Credentials{NKeyFile: seeds["globex-service"]}).Connect(url); !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("revoked user reconnects: %v, want an authorization violation", err)
	}
	// The others are unaffected, and requests still reach their owner.
	svc := newClient(t, connectAs(t, url, "acme-service", seeds["acme-service"]).nc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := svc.Check(ctx, api.CheckRequest{Tenant: "acme"}); err != nil {
		t.Errorf("acme's service after globex's revocation: %v", err)
	}
}

// TestMalformedCredentialsFileRefusesToStart: a server told to
// authenticate never starts open or with half its users.
func TestMalformedCredentialsFileRefusesToStart(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"missing":  "",
		"not json": "users: [acme]",
		"bad role": `{"users":[{"name":"x","role":"root","nkey":"UB3OR7XRM5IKFHWQ5AT5BCT3O6GR5MT6JQ6MUHBVDYHXJRZFCXF3BCGR"}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".json")
			if content != "" {
				writeFile(t, path, content)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			l, err := ledger.Start(ctx, ledger.Config{AuthFile: path, DataDir: t.TempDir(), Listen: "127.0.0.1:-1"})
			if err == nil {
				l.Close()
				t.Fatal("started")
			}
			if content != "" && !errors.Is(err, auth.ErrInvalidFile) {
				t.Errorf("error %v does not wrap auth.ErrInvalidFile", err)
			}
			if !strings.Contains(err.Error(), path) && !strings.Contains(err.Error(), "credentials file") {
				t.Errorf("error %q names neither the file nor what it is", err)
			}
		})
	}
}

// TestReplySniffing: acme's service subscribes to everything its
// permissions let it while globex's service makes requests; it receives
// none of globex's replies.
func TestReplySniffing(t *testing.T) {
	l, _, seeds := startAuthLedger(t)
	url := l.ClientURL()
	a := connectAs(t, url, "acme-service", seeds["acme-service"])
	var kept []*nats.Subscription
	for _, subj := range []string{">", "_INBOX.>", "*.>", "_INBOX_*.>", a.nc.Opts.InboxPrefix + ".>", "ledger.>", "$JS.>"} {
		sub, err := a.nc.SubscribeSync(subj)
		if err != nil {
			t.Fatal(err)
		}
		// The server's refusal comes before the flush's PONG, and marks the
		// subscription (PermissionErrOnSubscribe).
		if err := a.nc.Flush(); err != nil {
			t.Fatal(err)
		}
		switch _, err := sub.NextMsg(time.Millisecond); {
		case errors.Is(err, nats.ErrPermissionViolation):
		case errors.Is(err, nats.ErrTimeout):
			kept = append(kept, sub)
		default:
			t.Fatalf("subscribe %s: %v", subj, err)
		}
	}
	if len(kept) != 1 || kept[0].Subject != a.nc.Opts.InboxPrefix+".>" {
		var subjects []string
		for _, s := range kept {
			subjects = append(subjects, s.Subject)
		}
		t.Errorf("acme's service may subscribe to %v, want only its own inbox prefix", subjects)
	}
	b := newClient(t, connectAs(t, url, "globex-service", seeds["globex-service"]).nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 50 {
		if _, err := b.Check(ctx, api.CheckRequest{Tenant: "globex", Request: events.Amounts{Tokens: int64(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, sub := range kept {
		if n, _, _ := sub.Pending(); n != 0 {
			m, _ := sub.NextMsg(0)
			t.Errorf("acme's service saw %d messages of globex's traffic on %s, e.g. %s", n, sub.Subject, m.Subject)
		}
	}
}

// countStream reads the whole stream as the replay commands do and counts
// its messages.
func countStream(ctx context.Context, js jetstream.JetStream) (uint64, error) {
	src, err := replay.NewStreamSource(js, replay.StreamOptions{})
	if err != nil {
		return 0, err
	}
	var n uint64
	_, err = src.Read(ctx, replay.Range{}, func(ms []replay.Message) error {
		n += uint64(len(ms))
		return nil
	})
	return n, err
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// lastSeqOf is the stream's last sequence as nc's user sees it.
func lastSeqOf(t *testing.T, nc *nats.Conn) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return streamLastSeq(t, ctx, ledgertest.JetStream(t, nc))
}
