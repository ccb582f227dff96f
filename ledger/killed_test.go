package ledger_test

import (
	"errors"
	"fmt"
	"net"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ledgerworks/ledger/api"
	"github.com/ledgerworks/ledger/client"
	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/internal/ledgertest"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startLedgerProcess runs `ledger serve` (embedded server) in a child process.
func startLedgerProcess(t *testing.T, addr, dir string) *exec.Cmd {
	t.Helper()
	return startChild(t, "ledger", envListen+"="+addr, envData+"="+dir)
}

// The ledger process killed with SIGKILL in the middle of 64 concurrent
// reservers and restarted on the same data: no over-commit, every grant a
// client received is still held, and reservations whose TTL passed while the
// ledger was down are expired by the restarted one.
func TestLedgerKilledDuringReservations(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	addr, dir := freeAddr(t), t.TempDir()
	url := "nats://" + addr
	cmd := startLedgerProcess(t, addr, dir)
	var nc *nats.Conn
	ledgertest.Eventually(t, 30*time.Second, "the ledger process to listen", func() bool {
		var err error
		nc, err = nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
		return err == nil
	})
	t.Cleanup(nc.Close)
	c, _ := client.New(nc, client.WithTimeout(2*time.Second))
	retry := func(what string, f func() error) {
		t.Helper()
		ledgertest.Eventually(t, 30*time.Second, what, func() bool { return f() == nil })
	}
	const n = 400
	for _, tenant := range []string{"acme", "temp"} {
		retry("set the quota", func() error {
			_, err := c.SetQuota(ctx, tenant, events.Quota{ID: "cap", Limits: []events.Limit{dayLimit(events.MetricTokens, n)}})
			return err
		})
	}
	// Short-lived reservations on another tenant, left to expire while the
	// ledger is down.
	var expiresAt time.Time
	for i := range 3 {
		id := fmt.Sprintf("short-%d", i)
		retry("reserve "+id, func() error {
			r, err := c.Reserve(ctx, "temp", events.Dimensions{"user": "x"}, events.Amounts{Tokens: 5}, client.ReserveOptions{ID: id, TTL: 2 * time.Second})
			if err == nil {
				expiresAt = r.ExpiresAt
			}
			return err
		})
	}

	var granted atomic.Int64
	var mu sync.Mutex
	grants := map[string]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				id := fmt.Sprintf("w%d-r%d", w, i)
				for {
					_, err := c.Reserve(ctx, "acme", events.Dimensions{"user": "u"}, events.Amounts{Tokens: 1}, client.ReserveOptions{ID: id, TTL: 10 * time.Minute})
					if err == nil {
						granted.Add(1)
						mu.Lock()
						grants[id] = true
						mu.Unlock()
						break
					}
					if errors.Is(err, events.ErrQuotaExceeded) {
						return
					}
					if ctx.Err() != nil {
						errs <- err
						return
					}
					// unavailable, conflict, no responders while the ledger
					// is down: retry the same id.
				}
			}
		}()
	}
	ledgertest.Eventually(t, time.Minute, "a third of the grants", func() bool { return granted.Load() >= n/3 })
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("ledger did not die of SIGKILL: %v", err)
	}
	t.Logf("killed after %d grants", granted.Load())
	ledgertest.Eventually(t, 10*time.Second, "the short reservations' TTL to pass while the ledger is down", func() bool { return time.Now().After(expiresAt) })
	cmd = startLedgerProcess(t, addr, dir)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if g := granted.Load(); g != n {
		t.Fatalf("granted %d reservations against a limit of %d across a SIGKILL", g, n)
	}
	var st *api.CheckReply
	retry("check", func() error {
		var err error
		st, err = c.Check(ctx, api.CheckRequest{Tenant: "acme", Dims: events.Dimensions{"user": "u"}})
		return err
	})
	if len(st.Limits) != 1 || st.Limits[0].Reserved != n {
		t.Fatalf("after the restart the ledger holds %+v, want %d reserved: a granted reservation was lost", st.Limits, n)
	}
	// Every grant a client received is a reservation in the stream, and no
	// other reservation was created.
	created := map[string]bool{}
	for _, ev := range streamEvents(t, nc, events.Subject("acme", events.ClassDecision)) {
		if p, ok := ev.Payload.(*events.ReservationCreated); ok {
			created[p.Reservation] = true
		}
	}
	if len(created) != len(grants) {
		t.Fatalf("%d reservations in the stream, %d granted to clients", len(created), len(grants))
	}
	for id := range grants {
		if !created[id] {
			t.Fatalf("granted reservation %s is not in the stream", id)
		}
	}
	ledgertest.Eventually(t, 30*time.Second, "the restarted ledger to expire the short reservations", func() bool {
		r, err := c.Check(ctx, api.CheckRequest{Tenant: "temp", Dims: events.Dimensions{"user": "x"}})
		return err == nil && len(r.Limits) == 1 && r.Limits[0].Reserved == 0
	})
	expired := 0
	for _, ev := range streamEvents(t, nc, events.Subject("temp", events.ClassDecision)) {
		if _, ok := ev.Payload.(*events.ReservationExpired); ok {
			expired++
		}
	}
	if expired != 3 {
		t.Fatalf("%d reservation.expired events, want 3", expired)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("ledger did not stop cleanly: %v", err)
	}
}

// streamEvents reads every event on a subject of the ledger stream.
func streamEvents(t *testing.T, nc *nats.Conn, subject string) []events.Event {
	t.Helper()
	ctx := testCtx(t, 30*time.Second)
	js := ledgertest.JetStream(t, nc)
	cons, err := js.OrderedConsumer(ctx, events.StreamName, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatal(err)
	}
	var out []events.Event
	for {
		batch, err := cons.FetchNoWait(1000)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			evs, err := events.DecodeBatch(m.Data())
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, evs...)
		}
		if batch.Error() != nil {
			t.Fatal(batch.Error())
		}
		if n == 0 {
			return out
		}
	}
}
