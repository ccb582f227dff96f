// Package ledgertest starts real ledger parts for tests: an embedded NATS
// server with JetStream on a free port, its store in a test directory, that
// can be restarted on the same store, and a whole ledger. Everything is
// stopped by t.Cleanup.
package ledgertest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ledgerworks/ledger/ledger"
)

// Server is an embedded NATS server with JetStream.
type Server struct {
	t    testing.TB
	dir  string
	addr string
	srv  *server.Server
}

// StartServer starts an embedded server storing in dir (t.TempDir() when
// empty) with periodic sync (tests do not need fsync per write), mapping
// tenant-addressed requests to partitions as `ledger serve` does.
func StartServer(t testing.TB, dir string) *Server {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	s := &Server{t: t, dir: dir, addr: "127.0.0.1:-1"}
	s.start()
	t.Cleanup(s.Shutdown)
	return s
}

func (s *Server) start() {
	s.t.Helper()
	srv, err := ledger.StartServer(ledger.ServerOptions{Listen: s.addr, StoreDir: s.dir, Durability: ledger.SyncPeriodic})
	if err != nil {
		s.t.Fatalf("start NATS server: %v", err)
	}
	s.srv = srv
	// Restart on the same port, so clients reconnect to it.
	s.addr = srv.Addr().String()
}

// URL is the client URL.
func (s *Server) URL() string { return s.srv.ClientURL() }

// Dir is the server's store directory.
func (s *Server) Dir() string { return s.dir }

// Restart shuts the server down and starts it again on the same store and port.
func (s *Server) Restart() {
	s.t.Helper()
	s.Shutdown()
	s.start()
}

// Shutdown stops the server.
func (s *Server) Shutdown() {
	if s.srv != nil {
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
	}
}

// Connect returns a connection closed at cleanup.
func Connect(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// JetStream returns a JetStream context on nc.
func JetStream(t testing.TB, nc *nats.Conn) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// StartLedger starts a whole ledger (embedded server unless cfg.NATSURL is
// set) in cfg.DataDir (t.TempDir() when empty) on a free port.
func StartLedger(t testing.TB, cfg ledger.Config) *ledger.Ledger {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:-1"
	}
	if cfg.Durability == "" {
		cfg.Durability = ledger.SyncPeriodic
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l, err := ledger.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start ledger: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("close ledger: %v", err)
		}
	})
	return l
}

// Eventually polls cond until it holds or the deadline passes.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond) // polling interval of a condition with a deadline
	}
}
