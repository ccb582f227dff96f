package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ledgerworks/ledger/internal/ledgertest"
)

// echo answers subject with the request's own body, on a connection of its
// own.
func echo(t *testing.T, url, subject string) {
	t.Helper()
	nc := ledgertest.Connect(t, url)
	if _, err := nc.Subscribe(subject, func(m *nats.Msg) { m.Respond(m.Data) }); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// Concurrent requests on one client each get their own reply.
func TestRepliesRouteConcurrentRequests(t *testing.T) {
	srv := ledgertest.StartServer(t, "")
	echo(t, srv.URL(), "echo")
	r := &replies{nc: ledgertest.Connect(t, srv.URL())}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				body := fmt.Sprintf("%d/%d", w, i)
				m, err := r.request(context.Background(), "echo", []byte(body), 5*time.Second)
				if err != nil {
					errs <- err
					return
				}
				if string(m.Data) != body {
					errs <- fmt.Errorf("request %s got the reply %s", body, m.Data)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := len(r.waiting); n != 0 {
		t.Fatalf("%d requests still registered after all were answered", n)
	}
}

// A request times out after the timeout, or ends with its context; a reply
// that comes too late is dropped rather than given to a later request.
func TestRepliesTimeoutContextAndLateReply(t *testing.T) {
	srv := ledgertest.StartServer(t, "")
	held := make(chan *nats.Msg, 4)
	resp := ledgertest.Connect(t, srv.URL())
	if _, err := resp.ChanSubscribe("slow", held); err != nil {
		t.Fatal(err)
	}
	if err := resp.Flush(); err != nil {
		t.Fatal(err)
	}
	r := &replies{nc: ledgertest.Connect(t, srv.URL())}

	if _, err := r.request(context.Background(), "slow", []byte("first"), 50*time.Millisecond); !errors.Is(err, nats.ErrTimeout) {
		t.Fatalf("unanswered request: %v, want a timeout", err)
	}
	m1 := <-held
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-held // the second request arrived: give up on it
		cancel()
	}()
	if _, err := r.request(ctx, "slow", []byte("second"), time.Minute); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled request: %v, want context.Canceled", err)
	}
	if err := m1.Respond([]byte("late")); err != nil { // to the first request, long gone
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		m, err := r.request(context.Background(), "slow", []byte("third"), time.Minute)
		if err == nil && string(m.Data) != "third" {
			err = fmt.Errorf("third request got the reply %q", m.Data)
		}
		done <- err
	}()
	m3 := <-held
	if err := m3.Respond(m3.Data); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	if _, err := r.request(context.Background(), "nobody", []byte("x"), time.Minute); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("request nobody answers: %v, want no responders", err)
	}
	if _, err := r.request(ctx, "slow", []byte("x"), time.Minute); !errors.Is(err, context.Canceled) {
		t.Fatalf("request with a done context: %v, want context.Canceled", err)
	}
}

// After Close a client subscribes again on its next request.
func TestRepliesCloseThenReuse(t *testing.T) {
	srv := ledgertest.StartServer(t, "")
	echo(t, srv.URL(), "echo")
	c, err := New(ledgertest.Connect(t, srv.URL()))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil { // never used: nothing to release
		t.Fatal(err)
	}
	for range 2 {
		m, err := c.replies.request(context.Background(), "echo", []byte("x"), 5*time.Second)
		if err != nil || string(m.Data) != "x" {
			t.Fatalf("request: %v %v", m, err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// BenchmarkRequest: one request and its reply through a client's replies,
// against nats.Conn.RequestWithContext under a per-request timeout, as
// the client did before; 32 callers per CPU, as in the load command.
func BenchmarkRequest(b *testing.B) {
	srv := ledgertest.StartServer(b, "")
	nc := ledgertest.Connect(b, srv.URL())
	resp := ledgertest.Connect(b, srv.URL())
	if _, err := resp.Subscribe("echo", func(m *nats.Msg) { m.Respond(m.Data) }); err != nil {
		b.Fatal(err)
	}
	if err := resp.Flush(); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	body := make([]byte, 64)
	r := &replies{nc: nc}
	b.Run("replies", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(32)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := r.request(ctx, "echo", body, 5*time.Second); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("nats-with-timeout", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(32)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := nc.RequestWithContext(ctx, "echo", body)
				cancel()
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
