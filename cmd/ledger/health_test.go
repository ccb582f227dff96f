package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ledgerworks/ledger/api"
	"github.com/ledgerworks/ledger/internal/cli"
	"github.com/ledgerworks/ledger/internal/ledgertest"
)

// health runs `ledger health args...` as main would.
func health(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = run(context.Background(), append([]string{"health"}, args...), &out, &errOut)
	return out.String(), errOut.String(), err
}

func TestHealthHTTP(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz":
			w.Write([]byte(`{"status":"ok"}`))
		case "/unhealthy":
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("{\"status\":\"unavailable\",\n \"error\":\"JetStream has not established contact with a meta leader\"}"))
		case "/slow":
			<-release
		}
	}))
	defer srv.Close()
	defer close(release)

	out, _, err := health(t, "--http", srv.URL+"/healthz")
	if err != nil || !strings.Contains(out, "200") {
		t.Fatalf("2xx: err %v, stdout %q", err, out)
	}

	_, _, err = health(t, "--http", srv.URL+"/unhealthy")
	if err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "meta leader") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("503: want one line with the status and the reason, got %v", err)
	}

	start := time.Now()
	_, _, err = health(t, "--http", srv.URL+"/slow", "--timeout", "200ms")
	if err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("slow server: err %v after %s, want an error after the timeout", err, time.Since(start))
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String() + "/healthz"
	l.Close()
	if _, _, err := health(t, "--http", closed); err == nil {
		t.Fatal("nothing listening: want an error")
	}
}

// respond answers member status requests for name with st, as a member's
// status endpoint would.
func respond(t *testing.T, nc *nats.Conn, name string, answer func(m *nats.Msg)) {
	t.Helper()
	sub, err := nc.Subscribe(api.MemberStatusSubject(name), answer)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

func replyStatus(st api.MemberStatus) func(m *nats.Msg) {
	return func(m *nats.Msg) {
		b, _ := json.Marshal(st)
		m.Respond(b)
	}
}

func TestHealthMember(t *testing.T) {
	s := ledgertest.StartServer(t, "")
	nc := ledgertest.Connect(t, s.URL())
	// Two URLs, the first with nothing behind it, as when one node of the
	// cluster is down.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "nats://" + l.Addr().String()
	l.Close()
	urls := dead + "," + s.URL()

	var parts []api.PartitionStatus
	for p := 0; p < 16; p++ {
		state := "owner"
		if p >= 8 {
			state = "standby"
		}
		parts = append(parts, api.PartitionStatus{Partition: p, State: state, Epoch: 1})
	}
	respond(t, nc, "ledger-a", replyStatus(api.MemberStatus{Member: "ledger-a", Role: "ledger", Ready: true, AppliedSeq: 42, StreamSeq: 42, Partitions: parts}))
	respond(t, nc, "ledger-b", replyStatus(api.MemberStatus{Member: "ledger-b", Role: "ledger", Ready: false, AppliedSeq: 10, StreamSeq: 42, Lag: 32}))
	respond(t, nc, "impostor", replyStatus(api.MemberStatus{Member: "ledger-a", Role: "ledger", Ready: true}))
	respond(t, nc, "broken", func(m *nats.Msg) {
		r := nats.NewMsg(m.Reply)
		r.Header.Set("Nats-Service-Error", "store closed")
		r.Header.Set("Nats-Service-Error-Code", "500")
		m.RespondMsg(r)
	})
	respond(t, nc, "garbled", func(m *nats.Msg) { m.Respond([]byte("not json")) })
	respond(t, nc, "silent", func(m *nats.Msg) {})

	out, _, err := health(t, "--nats-url", urls, "--member", "ledger-a")
	if err != nil {
		t.Fatalf("ready member: %v", err)
	}
	if want := "owner 0-7, standby 8-15"; !strings.Contains(out, want) || !strings.Contains(out, "applied seq 42") {
		t.Errorf("ready member: stdout %q, want the applied sequence and %q", out, want)
	}

	for _, c := range []struct {
		member, want string
		timeout      string
	}{
		{"ledger-b", "not ready: applied seq 10 of 42 (lag 32)", ""},
		{"projector-9", "nobody answers on ledger.cluster.status.projector-9", ""},
		{"impostor", "ledger-a answered", ""},
		{"broken", "error 500: store closed", ""},
		{"garbled", "not json", ""},
		{"silent", "no answer on ledger.cluster.status.silent within 300ms", "300ms"},
	} {
		args := []string{"--nats-url", urls, "--member", c.member}
		if c.timeout != "" {
			args = append(args, "--timeout", c.timeout)
		}
		start := time.Now()
		_, _, err := health(t, args...)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("member %s: got %v, want one line with %q", c.member, err, c.want)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("member %s: took %s", c.member, d)
		}
	}

	if _, _, err := health(t, "--nats-url", dead, "--member", "ledger-a"); err == nil || !strings.Contains(err.Error(), "connect") {
		t.Errorf("no server: got %v, want a connect error", err)
	}
}

func TestHealthFlags(t *testing.T) {
	stdout, stderr, err := health(t, "-h")
	if err != nil || !strings.HasPrefix(stdout, "usage: ledger health") || !strings.Contains(stdout, "--member") || stderr != "" {
		t.Errorf("-h: err %v, stdout %q, stderr %q, want the usage on stdout", err, stdout, stderr)
	}
	for _, args := range [][]string{
		{},
		{"--http", "http://127.0.0.1:1/", "--member", "x"},
		{"--member", "x"},
		{"--nats-url", "nats://127.0.0.1:1"},
		{"--http", "http://127.0.0.1:1/", "extra"},
		{"--http", "http://127.0.0.1:1/", "--timeout", "0s"},
	} {
		stdout, stderr, err := health(t, args...)
		if exitStatus(err) != cli.StatusUsage || stdout != "" || !strings.HasPrefix(stderr, "ledger health: ") || !strings.Contains(stderr, "\nusage: ledger health [flags]") {
			t.Errorf("%q: got %v (exit %d), stderr %q, want a usage error", args, err, exitStatus(err), stderr)
		}
	}
}
