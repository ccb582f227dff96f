package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ledgerworks/ledger/api"
	"github.com/ledgerworks/ledger/client"
	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/internal/ledgertest"
)

// syncBuffer collects the log of a serve running in another goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serveUntil runs `ledger serve` until stop is called, like Ctrl-C would.
func serveUntil(t *testing.T, args ...string) (log *syncBuffer, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log = &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, append([]string{"serve"}, args...), log, log) }()
	ledgertest.Eventually(t, 20*time.Second, "serve to log that it started", func() bool {
		return strings.Contains(log.String(), "ledger started")
	})
	return log, func() error { cancel(); return <-done }
}

// `ledger serve` logs where it listens and where its data lives, stops
// cleanly when its context ends (SIGINT/SIGTERM in main), and started again on
// the same directory answers as before.
func TestServeStopsCleanlyAndRestartsWithItsData(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	args := []string{"--data", dir, "--listen", addr, "--durability", "periodic"}

	log, stop := serveUntil(t, args...)
	for _, want := range []string{"nats://" + addr, "data=" + dir} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("serve log does not say %q:\n%s", want, log.String())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc := ledgertest.Connect(t, "nats://"+addr)
	c, _ := client.New(nc)
	if _, err := c.SetQuota(ctx, "acme", events.Quota{ID: "q", Limits: []events.Limit{{Metric: events.MetricRequests, Max: 10, Window: events.Window{Kind: events.Calendar, Unit: events.UnitMonth}}}}); err != nil {
		t.Fatal(err)
	}
	rec, err := c.RecordUsage(ctx, events.New("e1", "acme", time.Now(), nil, &events.UsageRecorded{Amounts: events.Amounts{Requests: 3}}))
	if err != nil {
		t.Fatal(err)
	}
	before, err := c.Check(ctx, api.CheckRequest{Tenant: "acme", AfterSeq: rec.Seq})
	if err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatalf("serve did not stop cleanly: %v", err)
	}
	if !strings.Contains(log.String(), "shutting down") {
		t.Errorf("serve did not log its shutdown:\n%s", log.String())
	}

	_, stop = serveUntil(t, args...)
	defer stop()
	ledgertest.Eventually(t, 10*time.Second, "the client to reconnect", func() bool { return nc.IsConnected() })
	after, err := c.Check(ctx, api.CheckRequest{Tenant: "acme", AfterSeq: rec.Seq})
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Limits) != 1 || after.Limits[0].Used != 3 || after.Limits[0].Used != before.Limits[0].Used {
		t.Fatalf("after restart %+v, before %+v", after.Limits, before.Limits)
	}
}
