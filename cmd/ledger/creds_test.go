package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/ledgerworks/ledger/auth"
	"github.com/ledgerworks/ledger/internal/cli"
	"github.com/ledgerworks/ledger/ledger"
)

// runLedger runs `ledger args...` as main does and returns its outputs.
func runLedger(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	err = run(ctx, args, &out, &errOut)
	return out.String(), errOut.String(), err
}

// readOrNone is a file's content, or "<none>" when it does not exist.
func readOrNone(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "<none>"
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// lsLines are `creds ls`'s rows by user name, each split in columns.
func lsLines(t *testing.T, authFile string) map[string][]string {
	t.Helper()
	out, _, err := runLedger(t, "creds", "ls", "--auth", authFile)
	if err != nil {
		t.Fatalf("creds ls: %v", err)
	}
	rows := map[string][]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for i := 0; sc.Scan(); i++ {
		cols := strings.Fields(sc.Text())
		if i == 0 {
			if strings.Join(cols, " ") != "NAME ROLE TENANT ADDED INBOX PREFIX" {
				t.Fatalf("creds ls header: %q", sc.Text())
			}
			continue
		}
		if len(cols) != 5 {
			t.Fatalf("creds ls row %q: %d columns, want 5", sc.Text(), len(cols))
		}
		rows[cols[0]] = cols
	}
	return rows
}

// TestCredsLifecycle: add users of every role, list them, print the
// nats-server config they make, revoke one.
func TestCredsLifecycle(t *testing.T) {
	dir := t.TempDir()
	authFile := filepath.Join(dir, "auth.json")
	users := []auth.User{
		{Name: "acme-producer", Role: auth.RoleProducer, Tenant: "acme"},
		{Name: "acme-svc", Role: auth.RoleService, Tenant: "acme"},
		{Name: "globex-admin", Role: auth.RoleAdmin, Tenant: "globex"},
		{Name: "root_admin", Role: auth.RoleAdmin},
		{Name: "auditor", Role: auth.RoleAuditor},
		{Name: "ledger-1", Role: auth.RoleLedger},
		{Name: "proj", Role: auth.RoleProjector},
	}
	seeds := map[string]string{}
	for i, u := range users {
		seeds[u.Name] = filepath.Join(dir, u.Name+".nk")
		args := []string{"creds", "add", "--auth", authFile, "--name", u.Name, "--role", string(u.Role), "--out", seeds[u.Name]}
		if u.Tenant != "" {
			args = append(args, "--tenant", u.Tenant)
		}
		out, stderr, err := runLedger(t, args...)
		if err != nil {
			t.Fatalf("creds add %s: %v\n%s", u.Name, err, stderr)
		}
		if !strings.Contains(out, seeds[u.Name]) {
			t.Errorf("creds add %s does not say where the seed is:\n%s", u.Name, out)
		}
		f, err := auth.Load(authFile)
		if err != nil {
			t.Fatalf("after adding %s: %v", u.Name, err)
		}
		if len(f.Users) != i+1 {
			t.Fatalf("after adding %s: %d users, want %d", u.Name, len(f.Users), i+1)
		}
		got := f.Lookup(u.Name)
		if got == nil || got.Role != u.Role || got.Tenant != u.Tenant || got.Added.IsZero() {
			t.Fatalf("after adding %s the file has %+v", u.Name, got)
		}
		users[i].NKey = got.NKey
	}

	t.Run("seed files", func(t *testing.T) {
		for _, u := range users {
			path := seeds[u.Name]
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("%s: mode %v, want 0600", path, fi.Mode().Perm())
			}
			data := readOrNone(t, path)
			lines := strings.Split(strings.TrimSpace(data), "\n")
			if len(lines) < 2 || !strings.HasPrefix(lines[0], "#") {
				t.Errorf("%s does not start with comment lines:\n%s", path, data)
			}
			var seedLines int
			for _, l := range lines {
				if strings.HasPrefix(l, "SU") {
					seedLines++
				} else if !strings.HasPrefix(l, "#") {
					t.Errorf("%s: line %q is neither a comment nor the seed", path, l)
				}
			}
			if seedLines != 1 {
				t.Errorf("%s: %d seed lines, want 1:\n%s", path, seedLines, data)
			}
			id, err := auth.LoadIdentity(path)
			if err != nil {
				t.Fatal(err)
			}
			if id.PublicKey() != u.NKey {
				t.Errorf("%s: the seed's key %s is not %s's in the file, %s", path, id.PublicKey(), u.Name, u.NKey)
			}
		}
	})

	t.Run("ls", func(t *testing.T) {
		rows := lsLines(t, authFile)
		if len(rows) != len(users) {
			t.Errorf("creds ls lists %d users, want %d", len(rows), len(users))
		}
		for _, u := range users {
			row := rows[u.Name]
			if row == nil {
				t.Errorf("creds ls does not list %s", u.Name)
				continue
			}
			tenant := u.Tenant
			if tenant == "" {
				tenant = "*"
			}
			if row[1] != string(u.Role) || row[2] != tenant {
				t.Errorf("%s: role %s tenant %s, want %s %s", u.Name, row[1], row[2], u.Role, tenant)
			}
			if _, err := time.Parse(time.RFC3339, row[3]); err != nil {
				t.Errorf("%s: added %q: %v", u.Name, row[3], err)
			}
			if want := "_INBOX_" + u.NKey; row[4] != want || !strings.HasPrefix(row[4], "_INBOX_U") {
				t.Errorf("%s: inbox prefix %s, want %s", u.Name, row[4], want)
			}
		}
	})

	t.Run("config", func(t *testing.T) {
		out, _, err := runLedger(t, "creds", "config", "--auth", authFile)
		if err != nil {
			t.Fatalf("creds config: %v", err)
		}
		if !strings.Contains(out, "authorization {") {
			t.Fatalf("creds config prints no authorization block:\n%s", out)
		}
		conf := filepath.Join(t.TempDir(), "ledger-auth.conf")
		if err := os.WriteFile(conf, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		opts, err := server.ProcessConfigFile(conf)
		if err != nil {
			t.Fatalf("nats-server cannot read what creds config prints: %v\n%s", err, out)
		}
		if len(opts.Nkeys) != len(users) {
			t.Fatalf("%d nkey users in the config, want %d", len(opts.Nkeys), len(users))
		}
		for i, u := range users {
			if opts.Nkeys[i].Nkey != u.NKey {
				t.Errorf("config user %d: %s, want %s's %s", i, opts.Nkeys[i].Nkey, u.Name, u.NKey)
			}
			if opts.Nkeys[i].Permissions == nil || opts.Nkeys[i].Permissions.Publish == nil {
				t.Errorf("config user %d (%s) has no publish permissions", i, u.Name)
			}
		}
	})

	t.Run("revoke", func(t *testing.T) {
		if _, stderr, err := runLedger(t, "creds", "revoke", "--auth", authFile, "--name", "acme-svc"); err != nil {
			t.Fatalf("creds revoke: %v\n%s", err, stderr)
		}
		rows := lsLines(t, authFile)
		if _, ok := rows["acme-svc"]; ok {
			t.Error("creds ls still lists the revoked acme-svc")
		}
		if len(rows) != len(users)-1 {
			t.Errorf("after a revocation creds ls lists %d users, want %d", len(rows), len(users)-1)
		}
		before := readOrNone(t, authFile)
		_, _, err := runLedger(t, "creds", "revoke", "--auth", authFile, "--name", "acme-svc")
		if !errors.Is(err, auth.ErrNoSuchUser) {
			t.Errorf("second revoke: %v, want ErrNoSuchUser", err)
		}
		if readOrNone(t, authFile) != before {
			t.Error("a refused revoke changed the file")
		}
		// The name is free again.
		seed := filepath.Join(dir, "acme-svc-2.nk")
		if _, _, err := runLedger(t, "creds", "add", "--auth", authFile, "--name", "acme-svc", "--role", "service", "--tenant", "acme", "--out", seed); err != nil {
			t.Errorf("adding a revoked name again: %v", err)
		}
	})
}

// TestCredsRefusals: every refused creds command returns an error and
// leaves the credentials file (and an --out path) as it was.
func TestCredsRefusals(t *testing.T) {
	dir := t.TempDir()
	authFile := filepath.Join(dir, "auth.json")
	existing := filepath.Join(dir, "existing.nk")
	if _, _, err := runLedger(t, "creds", "add", "--auth", authFile, "--name", "svc", "--role", "service", "--tenant", "acme", "--out", existing); err != nil {
		t.Fatal(err)
	}
	const notASeed = "precious, not to be overwritten\n"
	taken := filepath.Join(dir, "taken.nk")
	if err := os.WriteFile(taken, []byte(notASeed), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(taken+".json", []byte(notASeed), 0o600); err != nil {
		t.Fatal(err)
	}
	newOut := filepath.Join(dir, "new.nk")
	add := func(extra ...string) []string {
		return append([]string{"creds", "add", "--auth", authFile}, extra...)
	}
	for _, c := range []struct {
		name string
		args []string
		want string // in the error
	}{
		{"add without --out", add("--name", "x", "--role", "auditor"), "--out"},
		{"add over an existing file", add("--name", "x", "--role", "auditor", "--out", taken), "exists"},
		{"add of a taken name", add("--name", "svc", "--role", "auditor", "--out", newOut), "exists"},
		{"add of role root", add("--name", "x", "--role", "root", "--out", newOut), "role"},
		{"add of a service without tenant", add("--name", "x", "--role", "service", "--out", newOut), "tenant"},
		{"add of a producer without tenant", add("--name", "x", "--role", "producer", "--out", newOut), "tenant"},
		{"add of an auditor with a tenant", add("--name", "x", "--role", "auditor", "--tenant", "x", "--out", newOut), "tenant"},
		{"add of a ledger with a tenant", add("--name", "x", "--role", "ledger", "--tenant", "x", "--out", newOut), "tenant"},
		{"add of a dotted name", add("--name", "a.b", "--role", "auditor", "--out", newOut), "name"},
		{"add without a name", add("--role", "auditor", "--out", newOut), "name"},
		{"add of a dotted tenant", add("--name", "x", "--role", "service", "--tenant", "ac.me", "--out", newOut), "tenant"},
		{"add with an argument", add("--name", "x", "--role", "auditor", "--out", newOut, "extra"), "extra"},
		{"add with a --context not .json", add("--name", "x", "--role", "auditor", "--out", newOut, "--context", filepath.Join(dir, "x.ctx")), "--context"},
		{"add with an existing --context", add("--name", "x", "--role", "auditor", "--out", newOut, "--context", taken+".json"), "--context"},
		{"add to a file in no directory", []string{"creds", "add", "--auth", filepath.Join(dir, "none", "auth.json"), "--name", "x", "--role", "auditor", "--out", newOut}, "none"},
		{"revoke of an unknown name", []string{"creds", "revoke", "--auth", authFile, "--name", "nobody"}, "nobody"},
		{"add without --auth", []string{"creds", "add", "--name", "x", "--role", "auditor", "--out", newOut}, "--auth"},
		{"revoke without --auth", []string{"creds", "revoke", "--name", "svc"}, "--auth"},
		{"ls without --auth", []string{"creds", "ls"}, "--auth"},
		{"config without --auth", []string{"creds", "config"}, "--auth"},
		{"unknown subcommand", []string{"creds", "rotate", "--auth", authFile, "--name", "svc"}, "rotate"},
		{"no subcommand", []string{"creds"}, ""},
		{"unknown flag", []string{"creds", "revoke", "--auth", authFile, "--name", "svc", "--force"}, "force"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := readOrNone(t, authFile)
			_, _, err := runLedger(t, c.args...)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not mention %q", err, c.want)
			}
			if after := readOrNone(t, authFile); after != before {
				t.Errorf("the credentials file changed:\n%s\nto\n%s", before, after)
			}
			for _, p := range []string{taken, taken + ".json"} {
				if got := readOrNone(t, p); got != notASeed {
					t.Errorf("%s was overwritten: %q", p, got)
				}
			}
			if got := readOrNone(t, newOut); got != "<none>" {
				t.Errorf("a refused add left a seed file %s", newOut)
				os.Remove(newOut)
			}
		})
	}
	f, err := auth.Load(authFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Users) != 1 || f.Lookup("svc") == nil {
		t.Errorf("after the refusals the file has %+v, want svc alone", f.Users)
	}
}

// TestCredsAddCreatesNoFileOnRefusal: the first add, refused, does not
// create the credentials file.
func TestCredsAddCreatesNoFileOnRefusal(t *testing.T) {
	dir := t.TempDir()
	authFile := filepath.Join(dir, "auth.json")
	for _, args := range [][]string{
		{"--name", "x", "--role", "root", "--out", filepath.Join(dir, "x.nk")},
		{"--name", "x", "--role", "auditor"},
	} {
		if _, _, err := runLedger(t, append([]string{"creds", "add", "--auth", authFile}, args...)...); err == nil {
			t.Fatalf("creds add %v accepted", args)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("a refused first add left %s", e.Name())
	}
}

// freeAddr is a loopback address nothing listens on (at the time).
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestServeAuthRefusals: serve refuses a malformed credentials file before
// it starts anything, an open server on a non-loopback address, and
// --auth with an external server.
func TestServeAuthRefusals(t *testing.T) {
	t.Run("malformed credentials file", func(t *testing.T) {
		dir := t.TempDir()
		for name, content := range map[string]string{
			"not-json.json":  "users: [acme]",
			"bad-role.json":  `{"users":[{"name":"x","role":"root","nkey":"UB3OR7XRM5IKFHWQ5AT5BCT3O6GR5MT6JQ6MUHBVDYHXJRZFCXF3BCGR"}]}`,
			"missing.json":   "",
			"two-users.json": `{"users":[{"name":"x","role":"auditor","nkey":"UB3OR7XRM5IKFHWQ5AT5BCT3O6GR5MT6JQ6MUHBVDYHXJRZFCXF3BCGR"},{"name":"x","role":"auditor","nkey":"UCEOA57ON5S6EFNOV6VWV2E6MQCG7VGAWZRXMULHAW2543GGGANQDWLS"}]}`,
		} {
			t.Run(name, func(t *testing.T) {
				path := filepath.Join(dir, name)
				if content != "" {
					if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				data := filepath.Join(t.TempDir(), "data")
				addr := freeAddr(t)
				start := time.Now()
				_, _, err := runLedger(t, "serve", "--auth", path, "--data", data, "--listen", addr)
				if err == nil {
					t.Fatal("serve started")
				}
				if !strings.Contains(err.Error(), path) {
					t.Errorf("error %q does not name %s", err, path)
				}
				if content != "" && !errors.Is(err, auth.ErrInvalidFile) {
					t.Errorf("error %q does not wrap auth.ErrInvalidFile", err)
				}
				if d := time.Since(start); d > 5*time.Second {
					t.Errorf("refused after %v", d)
				}
				if _, err := os.Stat(filepath.Join(data, "jetstream")); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("the server started before the file was read: %s/jetstream: %v", data, err)
				}
				if l, err := net.Listen("tcp", addr); err != nil {
					t.Errorf("something listens on %s after the refusal: %v", addr, err)
				} else {
					l.Close()
				}
			})
		}
	})
	t.Run("open server on every interface", func(t *testing.T) {
		_, _, err := runLedger(t, "serve", "--listen", "0.0.0.0:0", "--data", t.TempDir())
		if !errors.Is(err, ledger.ErrOpenListen) {
			t.Fatalf("serve --listen 0.0.0.0:0 without --auth: %v, want ErrOpenListen", err)
		}
	})
	t.Run("--nats-url with a missing --auth file", func(t *testing.T) {
		// With --nats-url the file guards the dashboard; a bad one is still
		// refused before anything connects.
		start := time.Now()
		_, _, err := runLedger(t, "serve", "--nats-url", "nats://127.0.0.1:1", "--auth", filepath.Join(t.TempDir(), "missing.json"), "--data", t.TempDir())
		if err == nil || !strings.Contains(err.Error(), "credentials file") {
			t.Errorf("serve --nats-url --auth missing.json: %v, want a refusal naming the credentials file", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("refused after %v: it tried to connect first", d)
		}
	})
}

// TestServeAuthOnEveryInterface: with --auth, serve may listen beyond the
// loopback address, and lets in only the file's users.
func TestServeAuthOnEveryInterface(t *testing.T) {
	dir := t.TempDir()
	authFile := filepath.Join(dir, "auth.json")
	seed := filepath.Join(dir, "svc.nk")
	if _, _, err := runLedger(t, "creds", "add", "--auth", authFile, "--name", "svc", "--role", "service", "--tenant", "acme", "--out", seed); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatalf("cannot listen on every interface: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	_, stop := serveUntil(t, "--auth", authFile, "--listen", net.JoinHostPort("0.0.0.0", strconv.Itoa(port)), "--data", filepath.Join(dir, "data"))
	defer func() {
		if err := stop(); err != nil {
			t.Errorf("serve did not stop cleanly: %v", err)
		}
	}()
	url := "nats://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	nc, err := auth.Credentials{NKeyFile: seed}.Connect(url)
	if err != nil {
		t.Fatalf("the file's user: %v", err)
	}
	nc.Close()
	if _, err := (auth.Credentials{}).Connect(url); err == nil {
		t.Error("an anonymous client connected")
	}
}

// TestCredsToken: creds token prints a dashboard token of the seed's user,
// alone on stdout, that package auth verifies against the file; with
// --auth it refuses a key that is not an admin or auditor there; a wrong
// command line prints nothing on stdout and exits with the usage status.
func TestCredsToken(t *testing.T) {
	dir := t.TempDir()
	authFile := filepath.Join(dir, "auth.json")
	seeds := map[string]string{}
	for _, u := range []auth.User{
		{Name: "acme-admin", Role: auth.RoleAdmin, Tenant: "acme"},
		{Name: "auditor", Role: auth.RoleAuditor},
		{Name: "acme-svc", Role: auth.RoleService, Tenant: "acme"},
		{Name: "gone", Role: auth.RoleAdmin},
	} {
		seeds[u.Name] = filepath.Join(dir, u.Name+".nk")
		args := []string{"creds", "add", "--auth", authFile, "--name", u.Name, "--role", string(u.Role), "--out", seeds[u.Name]}
		if u.Tenant != "" {
			args = append(args, "--tenant", u.Tenant)
		}
		if _, stderr, err := runLedger(t, args...); err != nil {
			t.Fatalf("creds add %s: %v\n%s", u.Name, err, stderr)
		}
	}
	if _, stderr, err := runLedger(t, "creds", "revoke", "--auth", authFile, "--name", "gone"); err != nil {
		t.Fatalf("revoke: %v\n%s", err, stderr)
	}
	f, err := auth.Load(authFile)
	if err != nil {
		t.Fatal(err)
	}
	roles := []auth.Role{auth.RoleAdmin, auth.RoleAuditor}

	for _, c := range []struct {
		args    []string
		user    string
		ttl     time.Duration
		stderrs string
	}{
		{[]string{"--nkey", seeds["acme-admin"]}, "acme-admin", auth.DefaultTokenTTL, "valid until"},
		{[]string{"--nkey", seeds["acme-admin"], "--auth", authFile}, "acme-admin", auth.DefaultTokenTTL, "acme-admin (admin of acme)"},
		{[]string{"--nkey", seeds["auditor"], "--auth", authFile, "--ttl", "2h"}, "auditor", 2 * time.Hour, "auditor (auditor)"},
	} {
		before := time.Now().Truncate(time.Second)
		out, stderr, err := runLedger(t, append([]string{"creds", "token"}, c.args...)...)
		if err != nil {
			t.Fatalf("creds token %v: %v\n%s", c.args, err, stderr)
		}
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != 1 || !strings.Contains(stderr, c.stderrs) {
			t.Errorf("creds token %v: stdout %q, stderr %q", c.args, out, stderr)
		}
		u, exp, err := auth.VerifyToken(lines[0], f.Users, time.Now(), roles...)
		if err != nil || u.Name != c.user {
			t.Errorf("creds token %v: the token signs in %q (%v), want %s", c.args, u.Name, err, c.user)
		}
		if exp.Before(before.Add(c.ttl)) || exp.After(time.Now().Add(c.ttl)) {
			t.Errorf("creds token %v: expires %s, want %s from now", c.args, exp, c.ttl)
		}
	}

	for _, c := range []struct {
		args  []string
		usage bool
		want  string
	}{
		{nil, true, "--nkey FILE is required"},
		{[]string{"--nkey", seeds["auditor"], "--ttl", "0s"}, true, "--ttl"},
		{[]string{"--nkey", seeds["auditor"], "--ttl", "800h"}, true, "--ttl"},
		{[]string{"--nkey", seeds["acme-svc"], "--auth", authFile}, false, "only admins and auditors"},
		{[]string{"--nkey", seeds["gone"], "--auth", authFile}, false, "not a user there"},
		{[]string{"--nkey", authFile}, false, "not an nkey seed file"},
		{[]string{"--nkey", filepath.Join(dir, "missing.nk")}, false, "no such file"},
	} {
		out, stderr, err := runLedger(t, append([]string{"creds", "token"}, c.args...)...)
		if err == nil || out != "" || !strings.Contains(stderr+err.Error(), c.want) {
			t.Errorf("creds token %v: stdout %q, err %v, stderr %q; want a refusal saying %q", c.args, out, err, stderr, c.want)
		}
		if usage := cli.ExitStatus(err) == cli.StatusUsage; usage != c.usage {
			t.Errorf("creds token %v: exit status %d", c.args, cli.ExitStatus(err))
		}
	}
}
