package main

import (
	"bytes"
	"context"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"
)

// `ledger serve --http ADDR` logs where its HTTP listener is, and `ledger
// health --http URL/readyz` (the containers' health check) finds it ready;
// /metrics answers on the same listener.
func TestServeHTTPAnswersHealth(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	log, stop := serveUntil(t, "--data", t.TempDir(), "--listen", addr, "--durability", "periodic", "--http", "127.0.0.1:0")
	defer stop()
	m := regexp.MustCompile(`msg="http listening[^"]*" addr=(127\.0\.0\.1:\d+)`).FindStringSubmatch(log.String())
	if m == nil {
		t.Fatalf("serve does not log its HTTP address:\n%s", log.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, path := range []string{"/readyz", "/healthz", "/metrics"} {
		var out, errs bytes.Buffer
		if err := run(ctx, []string{"health", "--http", "http://" + m[1] + path}, &out, &errs); err != nil {
			t.Fatalf("health --http %s: %v\n%s", path, err, errs.String())
		}
		if !strings.HasPrefix(out.String(), "healthy: ") {
			t.Errorf("health --http %s: %q", path, out.String())
		}
	}
}
