package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ledgerworks/ledger/api"
	"github.com/ledgerworks/ledger/client"
	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/internal/ledgertest"
	"github.com/ledgerworks/ledger/ledger"
)

func dayLimit(metric events.Metric, max int64) events.Limit {
	return events.Limit{Metric: metric, Max: max, Window: events.Window{Kind: events.Calendar, Unit: events.UnitDay}}
}

// reserveUntilDenied runs workers that each reserve one token at a time until
// a reservation is denied, and returns how many were granted. Transient
// errors (unavailable, conflict) are retried with the same reservation id.
func reserveUntilDenied(t *testing.T, ctx context.Context, conns []*nats.Conn, tenant string, dims events.Dimensions, workers int, granted *atomic.Int64) {
	t.Helper()
	if err := reserveAll(ctx, conns, tenant, dims, workers, granted); err != nil {
		t.Fatal(err)
	}
}

// reserveAll is reserveUntilDenied for any goroutine: it returns the first
// error that is neither a denial nor worth a retry.
func reserveAll(ctx context.Context, conns []*nats.Conn, tenant string, dims events.Dimensions, workers int, granted *atomic.Int64) error {
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, _ := client.New(conns[w%len(conns)], client.WithTimeout(3*time.Second))
			for i := 0; ; i++ {
				id := fmt.Sprintf("%s-w%d-r%d", dims["user"], w, i)
				for {
					_, err := c.Reserve(ctx, tenant, dims, events.Amounts{Tokens: 1}, client.ReserveOptions{ID: id, TTL: 10 * time.Minute})
					switch {
					case err == nil:
						granted.Add(1)
					case errors.Is(err, events.ErrQuotaExceeded):
						return
					case errors.Is(err, events.ErrUnavailable), errors.Is(err, events.ErrConflict):
						if ctx.Err() != nil {
							errs <- err
							return
						}
						continue // same id: answered, never held twice
					default:
						errs <- err
						return
					}
					break
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// reservedNow is what the projection holds for the tenant's calls.
func reservedNow(t *testing.T, ctx context.Context, nc *nats.Conn, c *client.Client, tenant string, dims events.Dimensions) []api.LimitStatus {
	t.Helper()
	// After every decision appended: a grant is answered once appended,
	// and may not be folded yet.
	last := streamLastSeq(t, ctx, ledgertest.JetStream(t, nc))
	r, err := c.Check(ctx, api.CheckRequest{Tenant: tenant, Dims: dims, AfterSeq: last})
	if err != nil {
		t.Fatal(err)
	}
	return r.Limits
}

// 64 concurrent reservers against one hard limit, and against two
// overlapping quotas: the granted total never exceeds the limit, and since
// demand exceeds it, reaches it exactly.
func TestNoOverCommit(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	l := ledgertest.StartLedger(t, ledger.Config{})
	nc := ledgertest.Connect(t, l.ClientURL())
	c, _ := client.New(nc)

	t.Run("one limit", func(t *testing.T) {
		const n = 300
		if _, err := c.SetQuota(ctx, "solo", events.Quota{ID: "cap", Limits: []events.Limit{dayLimit(events.MetricTokens, n)}}); err != nil {
			t.Fatal(err)
		}
		var granted atomic.Int64
		reserveUntilDenied(t, ctx, []*nats.Conn{nc}, "solo", events.Dimensions{"user": "u"}, 64, &granted)
		if g := granted.Load(); g != n {
			t.Fatalf("granted %d reservations of 1 token against a limit of %d", g, n)
		}
		st := reservedNow(t, ctx, nc, c, "solo", events.Dimensions{"user": "u"})
		if len(st) != 1 || st[0].Reserved != n || st[0].Remaining != 0 {
			t.Fatalf("projection after the run: %+v", st)
		}
	})

	t.Run("two overlapping quotas", func(t *testing.T) {
		// Per model 250 tokens a day, and per user 180: the user quota binds
		// for alice's gpt calls; bob then only has what is left of the model.
		for _, q := range []events.Quota{
			{ID: "per-model", Scope: map[string]string{"model": "gpt"}, Split: []string{"model"}, Limits: []events.Limit{dayLimit(events.MetricTokens, 250)}},
			{ID: "per-user", Split: []string{"user"}, Limits: []events.Limit{dayLimit(events.MetricTokens, 180)}},
		} {
			if _, err := c.SetQuota(ctx, "duo", q); err != nil {
				t.Fatal(err)
			}
		}
		var alice, bob atomic.Int64
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			reserveUntilDenied(t, ctx, []*nats.Conn{nc}, "duo", events.Dimensions{"user": "alice", "model": "gpt"}, 32, &alice)
		}()
		go func() {
			defer wg.Done()
			reserveUntilDenied(t, ctx, []*nats.Conn{nc}, "duo", events.Dimensions{"user": "bob", "model": "gpt"}, 32, &bob)
		}()
		wg.Wait()
		a, b := alice.Load(), bob.Load()
		if a > 180 || b > 180 || a+b > 250 {
			t.Fatalf("over-commit: alice %d (max 180), bob %d (max 180), together %d (max 250)", a, b, a+b)
		}
		if a+b != 250 {
			t.Fatalf("capacity lost: alice %d + bob %d = %d, want the model's 250", a, b, a+b)
		}
	})
}

// Two ledger instances that both believe they own every partition (as an
// owner deposed while paused and its successor would, for a moment), each
// with its own projection, both taking reservations for the same tenant:
// the fence on the stream keeps the total at the limit. Leases keep such
// moments rare; the fence is what keeps them harmless.
func TestNoOverCommitAcrossTwoInstances(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	srv := ledgertest.StartServer(t, "")
	a := ledgertest.StartLedger(t, ledger.Config{NATSURL: srv.URL(), Member: "a", Unleased: true})
	b := ledgertest.StartLedger(t, ledger.Config{NATSURL: srv.URL(), Member: "b", Unleased: true})
	nc := ledgertest.Connect(t, srv.URL())
	c, _ := client.New(nc)
	const n = 200
	set, err := c.SetQuota(ctx, "shared", events.Quota{ID: "cap", Limits: []events.Limit{dayLimit(events.MetricTokens, n)}})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []*ledger.Ledger{a, b} { // both instances know the quota
		if err := l.Projector().WaitApplied(ctx, set.Seq); err != nil {
			t.Fatal(err)
		}
	}
	conns := []*nats.Conn{ledgertest.Connect(t, srv.URL()), ledgertest.Connect(t, srv.URL()), ledgertest.Connect(t, srv.URL()), ledgertest.Connect(t, srv.URL())}
	var granted atomic.Int64
	reserveUntilDenied(t, ctx, conns, "shared", events.Dimensions{"user": "u"}, 64, &granted)
	if g := granted.Load(); g != n {
		t.Fatalf("granted %d against a limit of %d across two instances", g, n)
	}
	p := events.Partition("shared")
	if ra, rb := a.Service().Requests()[p], b.Service().Requests()[p]; ra == 0 || rb == 0 {
		t.Fatalf("requests taken: %d by one instance, %d by the other; both must decide for the fence to be tested", ra, rb)
	}
}
