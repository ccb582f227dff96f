package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/internal/cli"
	"github.com/ledgerworks/ledger/internal/ledgertest"
	"github.com/ledgerworks/ledger/ledger"
	"github.com/ledgerworks/ledger/projections"
	"github.com/ledgerworks/ledger/replay"
	rt "github.com/ledgerworks/ledger/replay/replaytest"
)

// ledgerCmd runs the command as main does, and returns its outputs.
func ledgerCmd(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	err := run(ctx, args, &out, &errOut)
	return out.String(), errOut.String(), err
}

// fixtureURL appends the billing fixture of package replay's tests to a new
// stream and returns the server's URL.
func fixtureURL(t *testing.T) string {
	t.Helper()
	srv, js := rt.Stream(t)
	rt.AppendAll(t, js, rt.BillingFixture())
	return srv.URL()
}

// The report command prints the golden reports of package replay, byte for
// byte, every time.
func TestReportCommand(t *testing.T) {
	url := fixtureURL(t)
	for _, c := range []struct {
		golden string
		args   []string
	}{
		{"report_dst_spring_day.csv", []string{"--from", "2026-03-28", "--to", "2026-03-30", "--tz", "Europe/Berlin", "--group-by", "tenant,user,model,day"}},
		{"report_dst_spring_day.json", []string{"--from", "2026-03-28T00:00:00+01:00", "--to", "2026-03-30", "--tz", "Europe/Berlin", "--group-by", "tenant, user, model, day", "--format", "json"}},
		{"report_dst_fall_hour.csv", []string{"--from", "2026-10-25", "--to", "2026-10-26", "--tz", "Europe/Berlin", "--group-by", "hour,user"}},
		{"report_tenant_utc.csv", []string{"--from", "2026-03-28", "--to", "2026-03-30T00:00:00Z"}},
	} {
		want, err := os.ReadFile(filepath.Join("..", "..", "replay", "testdata", c.golden))
		if err != nil {
			t.Fatal(err)
		}
		args := append([]string{"report", "--nats-url", url, "--progress", "off"}, c.args...)
		for range 2 {
			out, _, err := ledgerCmd(t, args...)
			if err != nil {
				t.Fatalf("%v: %v", args, err)
			}
			if out != string(want) {
				t.Fatalf("%s: got\n%s", c.golden, out)
			}
		}
	}
	// Progress: auto (the default) shows nothing when stdout and stderr are
	// not terminals, --quiet nothing whatever --progress says, lines one line
	// at the end at least.
	for _, c := range []struct {
		args  []string
		lines bool
	}{
		{nil, false},
		{[]string{"--quiet", "--progress", "lines"}, false},
		{[]string{"--progress", "lines"}, true},
	} {
		out, stderr, err := ledgerCmd(t, append([]string{"report", "--nats-url", url, "--from", "2026-03-28", "--to", "2026-03-30"}, c.args...)...)
		if err != nil || !strings.HasPrefix(out, "# ledger usage report") {
			t.Fatalf("report %q: %v\n%s", c.args, err, out)
		}
		if got := strings.Contains(stderr, "report: seq "); got != c.lines || (!c.lines && stderr != "") {
			t.Errorf("report %q: stderr %q", c.args, stderr)
		}
	}
	file := filepath.Join(t.TempDir(), "r.csv")
	if _, _, err := ledgerCmd(t, "report", "--nats-url", url, "--progress", "lines", "--from", "2026-03-28", "--to", "2026-03-30", "--out", file); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(file); err != nil || !strings.HasPrefix(string(b), "# ledger usage report") {
		t.Fatalf("--out: %q %v", b, err)
	}
	for _, args := range [][]string{
		{"--from", "2026-03-28"},
		{"--from", "2026-03-30", "--to", "2026-03-28"},
		{"--from", "2026-03-28", "--to", "2026-03-30", "--tz", "Mars/Olympus"},
		{"--from", "2026-03-29T02:30", "--to", "2026-03-30", "--tz", "Europe/Berlin"},
		{"--from", "2026-03-28", "--to", "2026-03-30", "--format", "xml"},
		{"--from", "2026-03-28", "--to", "2026-03-30", "--group-by", "group"},
	} {
		if _, _, err := ledgerCmd(t, append([]string{"report", "--nats-url", url}, args...)...); err == nil {
			t.Errorf("report %v: no error", args)
		}
	}
}

// The audit command passes an untouched projection, and names the account
// whose counter was changed behind the ledger's back, exiting with status 3
// (2 is a wrong command line).
func TestAuditCommand(t *testing.T) {
	srv, js := rt.Stream(t)
	bs := rt.Generate(rt.GenOptions{Seed: 5, Events: 2_000, Tenants: 4, Start: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)})
	lv := rt.StartLive(t, js, "")
	seqs := rt.AppendAll(t, js, bs)
	lv.Wait(t, seqs[len(seqs)-1])
	lv.Stop()

	out, _, err := ledgerCmd(t, "audit", "--nats-url", srv.URL(), "--projection", lv.Dir, "--progress", "off")
	if err != nil || !strings.Contains(out, "OK: the live projection matches the stream") {
		t.Fatalf("untouched: %v\n%s", err, out)
	}
	hashOut, _, err := ledgerCmd(t, "hash", "--nats-url", srv.URL(), "--progress", "off")
	if err != nil {
		t.Fatal(err)
	}
	chain := strings.TrimPrefix(strings.Split(hashOut, "\n")[1], "chained sha256 ")
	if len(chain) != 64 || !strings.Contains(out, "chained sha256 "+chain) {
		t.Fatalf("audit and hash disagree on the chained hash:\n%s\n%s", out, hashOut)
	}

	store, err := projections.OpenStore(lv.Dir, projections.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var key []byte
	store.Scan(func(e *projections.Entry) error {
		if key == nil && e.Kind == projections.EntryCounter && e.Tenant == "t02" && e.Int > 0 {
			key = append([]byte{}, e.Key...)
		}
		return nil
	})
	if key == nil {
		t.Fatal("no counter of t02")
	}
	if err := store.DB().Set(key, binary.BigEndian.AppendUint64(nil, 123456789), nil); err != nil {
		t.Fatal(err)
	}
	store.Close()

	out, _, err = ledgerCmd(t, "audit", "--nats-url", srv.URL(), "--projection", lv.Dir, "--progress", "off")
	if !errors.Is(err, replay.ErrDifferences) || exitStatus(err) != exitDifferences {
		t.Fatalf("altered: error %v (exit %d)\n%s", err, exitStatus(err), out)
	}
	if !strings.Contains(out, "DIFF tenant=t02 counter ") || !strings.Contains(out, "live 123456789") || !strings.Contains(out, "DIFFERENCES: 1 in accounts t02") {
		t.Fatalf("altered: the account is not named:\n%s", out)
	}
	out, _, err = ledgerCmd(t, "audit", "--nats-url", srv.URL(), "--projection", lv.Dir, "--progress", "off", "--format", "json")
	var res replay.AuditResult
	if jerr := json.Unmarshal([]byte(out), &res); jerr != nil || err == nil || len(res.Differences) != 1 || res.Differences[0].Tenant != "t02" {
		t.Fatalf("json: %v %v\n%s", err, jerr, out)
	}
	if _, stderr, err := ledgerCmd(t, "audit", "--nats-url", srv.URL()); exitStatus(err) != cli.StatusUsage || !strings.HasPrefix(stderr, "ledger audit: give one of --projection DIR and --service\nusage: ledger audit") {
		t.Fatalf("audit without a projection: %v (exit %d)\n%s", err, exitStatus(err), stderr)
	}
	if _, _, err := ledgerCmd(t, "audit", "--nats-url", "nats://127.0.0.1:1", "--service"); exitStatus(err) != exitError {
		t.Fatalf("audit with no server: %v (exit %d)", err, exitStatus(err))
	}
}

// Against a running ledger, the audit compares every tenant's totals with
// what its service answers.
func TestAuditServiceCommand(t *testing.T) {
	l := ledgertest.StartLedger(t, ledger.Config{})
	js := ledgertest.JetStream(t, ledgertest.Connect(t, l.ClientURL()))
	bs := rt.Generate(rt.GenOptions{Seed: 6, Events: 1_000, Tenants: 3, Start: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)})
	rt.AppendAll(t, js, bs)
	out, _, err := ledgerCmd(t, "audit", "--nats-url", l.ClientURL(), "--service", "--progress", "off")
	if err != nil || !strings.Contains(out, "3 accounts compared") || !strings.Contains(out, "OK:") {
		t.Fatalf("%v\n%s", err, out)
	}
}

// at answers as of a sequence or a time; whatif reports the proposal's
// denials.
func TestAtAndWhatIfCommands(t *testing.T) {
	srv, js := rt.Stream(t)
	rt.AppendAll(t, js, rt.WhatIfFixture())
	url := srv.URL()

	// After e2 (sequence 4) ana has 900 tokens today under the recorded
	// quota of 1,000,000.
	check := `{"dims":{"user":"ana","model":"m"},"request":{"tokens":200}}`
	out, _, err := ledgerCmd(t, "at", "--nats-url", url, "--tenant", "acme", "--seq", "4", "--now", "2026-02-01T07:15:00Z", "--check", check, "--progress", "off")
	if err != nil {
		t.Fatal(err)
	}
	var snap replay.Snapshot
	if err := json.Unmarshal([]byte(out), &snap); err != nil {
		t.Fatal(err)
	}
	if snap.Seq != 4 || snap.Totals[events.MetricTokens] != 900 || len(snap.Checks) != 1 || !snap.Checks[0].Reply.Allowed || snap.Checks[0].Reply.Limits[0].Used != 900 {
		t.Fatalf("at 4: %s", out)
	}
	out, _, err = ledgerCmd(t, "at", "--nats-url", url, "--tenant", "acme", "--seq", "4", "--now", "2026-02-01T07:15:00Z", "--check", check, "--format", "text", "--progress", "off")
	if err != nil || !strings.Contains(out, "tenant acme at sequence 4") || !strings.Contains(out, ": allowed") {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, args := range [][]string{
		{"--tenant", "acme"},
		{"--tenant", "acme", "--seq", "4", "--time", "2026-02-01"},
		{"--tenant", "a.b", "--seq", "4"},
		{"--tenant", "acme", "--seq", "4", "--check", "{nope"},
		{"--tenant", "acme", "--seq", "99"},
	} {
		if _, _, err := ledgerCmd(t, append([]string{"at", "--nats-url", url, "--progress", "off"}, args...)...); err == nil {
			t.Errorf("at %v: no error", args)
		}
	}

	prop := filepath.Join(t.TempDir(), "quotas.json")
	b, err := json.Marshal(rt.WhatIfProposal())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(prop, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, err = ledgerCmd(t, "whatif", "--nats-url", url, "--quotas", prop, "--from", "2026-02-01T06:00:00Z", "--to", "2026-02-03", "--progress", "off")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"tenant acme quota tokens-day (hard): 1 calls, 1 reservations, 0 workflows, 0 steps denied",
		"denied seq 5 usage.recorded.v1 e3 at 2026-02-01T07:20:00Z split \"ana\": tokens 900+0+200>1000",
		"tenant acme quota wf (hard): 0 calls, 0 reservations, 1 workflows, 2 steps denied",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("whatif output lacks %q:\n%s", want, out)
		}
	}
	out, _, err = ledgerCmd(t, "whatif", "--nats-url", url, "--quotas", prop, "--from", "2026-02-01T06:00:00Z", "--to", "2026-02-03", "--count-denied", "--format", "json", "--progress", "off")
	var rep replay.WhatIfReport
	if err != nil || json.Unmarshal([]byte(out), &rep) != nil || rep.Mode != replay.ModeDeniedStillCount || len(rep.Quotas) != 3 || len(rep.Quotas[1].Denials) != 7 {
		t.Fatalf("%v\n%s", err, out)
	}
	if _, _, err := ledgerCmd(t, "whatif", "--nats-url", url, "--quotas", filepath.Join(t.TempDir(), "none.json"), "--from", "2026-02-01", "--to", "2026-02-03"); err == nil {
		t.Fatal("whatif without a proposal file: no error")
	}
}
