package client_test

import (
	"bytes"
	"context"
	"errors"
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

// shortTimeout keeps the tests where nobody answers quick.
const shortTimeout = 200 * time.Millisecond

var (
	testDims    = events.Dimensions{"user": "ana"}
	testAmounts = events.Amounts{Tokens: 10}
)

// silentLedger subscribes to every partition subject on a connection of
// its own and never answers: each request times out. It counts the
// requests it gets.
func silentLedger(t *testing.T, url string) *atomic.Int64 {
	t.Helper()
	var n atomic.Int64
	nc := ledgertest.Connect(t, url)
	if _, err := nc.Subscribe(api.PartitionPrefix+".>", func(*nats.Msg) { n.Add(1) }); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return &n
}

// noLedger returns the URL of a NATS server with the ledger's subject
// mappings and, with silent, a subscriber that never answers; without it
// nobody answers at all (no responders).
func noLedger(t *testing.T, silent bool) string {
	srv := ledgertest.StartServer(t, "")
	if silent {
		silentLedger(t, srv.URL())
	}
	return srv.URL()
}

func newClient(t *testing.T, url string, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(ledgertest.Connect(t, url), append([]client.Option{client.WithTimeout(shortTimeout)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// decisionCalls are the calls a failure policy covers, each returning
// whether its answer is a degraded grant.
var decisionCalls = []struct {
	name string
	call func(context.Context, *client.Client) (degraded bool, err error)
}{
	{"check", func(ctx context.Context, c *client.Client) (bool, error) {
		r, err := c.Check(ctx, api.CheckRequest{Tenant: "acme", Dims: testDims, Request: testAmounts})
		if err != nil {
			return false, err
		}
		return r.Allowed && r.Degraded, nil
	}},
	{"consume", func(ctx context.Context, c *client.Client) (bool, error) {
		r, err := c.Consume(ctx, "acme", client.NewID(), testDims, testAmounts)
		if err != nil {
			return false, err
		}
		return r.Degraded && r.Outcome == client.OutcomeDegraded, nil
	}},
	{"limit action", func(ctx context.Context, c *client.Client) (bool, error) {
		r, err := c.LimitAction(ctx, api.LimitActionRequest{Tenant: "acme", Action: "new_run", Dims: testDims})
		if err != nil {
			return false, err
		}
		return r.Degraded, nil
	}},
	{"reserve", func(ctx context.Context, c *client.Client) (bool, error) {
		r, err := c.Reserve(ctx, "acme", testDims, testAmounts, client.ReserveOptions{})
		if err != nil {
			return false, err
		}
		return r.Degraded && r.Reply.Degraded && r.ID != "" && r.Reply.Reservation == r.ID, nil
	}},
}

// Fail closed, the default: with nobody answering (no responders) and with
// a subscriber that never answers (a timeout), every decision call returns
// an error matching client.ErrUnavailable (and events.ErrUnavailable), and
// nothing is counted as degraded.
func TestFailClosedIsUnavailable(t *testing.T) {
	for _, tc := range []struct {
		name   string
		silent bool
	}{{"no responders", false}, {"timeout", true}} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, noLedger(t, tc.silent))
			for _, d := range decisionCalls {
				start := time.Now()
				_, err := d.call(context.Background(), c)
				var e *events.Error
				if !errors.Is(err, client.ErrUnavailable) || !errors.Is(err, events.ErrUnavailable) || !errors.As(err, &e) {
					t.Fatalf("%s: %v, want unavailable", d.name, err)
				}
				if took := time.Since(start); took > 5*shortTimeout {
					t.Errorf("%s took %s with a timeout of %s", d.name, took, shortTimeout)
				}
			}
			if n := c.Degraded(); n != 0 {
				t.Fatalf("Degraded() = %d under fail closed", n)
			}
		})
	}
}

// Fail open: the same failures answer every decision call as allowed,
// marked Degraded, with a nil error, and each is counted. Settling a
// degraded reservation answers Degraded without a request to the ledger.
func TestFailOpenIsDegraded(t *testing.T) {
	for _, tc := range []struct {
		name   string
		silent bool
	}{{"no responders", false}, {"timeout", true}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := ledgertest.StartServer(t, "")
			var asked *atomic.Int64
			if tc.silent {
				asked = silentLedger(t, srv.URL())
			}
			c := newClient(t, srv.URL(), client.WithFailurePolicy(client.FailOpen))
			ctx := context.Background()
			for i, d := range decisionCalls {
				degraded, err := d.call(ctx, c)
				if err != nil || !degraded {
					t.Fatalf("%s: degraded %v, err %v; want a degraded grant", d.name, degraded, err)
				}
				if n := c.Degraded(); n != uint64(i+1) {
					t.Fatalf("after %s: Degraded() = %d, want %d", d.name, n, i+1)
				}
			}
			r, err := c.Reserve(ctx, "acme", testDims, testAmounts, client.ReserveOptions{ID: "r-open", TTL: time.Minute})
			if err != nil || !r.Degraded || r.ID != "r-open" || time.Until(r.ExpiresAt) <= 0 {
				t.Fatalf("reserve: %+v, %v", r, err)
			}
			var before int64
			if asked != nil {
				before = asked.Load()
			}
			rec, err := r.Reconcile(ctx, events.Amounts{Tokens: 5})
			if err != nil || !rec.Degraded || rec.Outcome != client.OutcomeDegraded {
				t.Fatalf("reconcile of a degraded reservation: %+v, %v", rec, err)
			}
			rel, err := r.Release(ctx, "never ran")
			if err != nil || !rel.Degraded {
				t.Fatalf("release of a degraded reservation: %+v, %v", rel, err)
			}
			if asked != nil && asked.Load() != before {
				t.Fatal("settling a degraded reservation sent a request")
			}
			if n := c.Degraded(); n != uint64(len(decisionCalls)+1) {
				t.Fatalf("Degraded() = %d, want %d (settling is not counted)", n, len(decisionCalls)+1)
			}
			// Calls that are not decisions still fail closed.
			if _, err := c.Usage(ctx, "acme", 0); !errors.Is(err, client.ErrUnavailable) {
				t.Fatalf("usage under fail open: %v, want unavailable", err)
			}
			if _, err := c.BeginWorkflow(ctx, "acme", "wf-1", testDims); !errors.Is(err, client.ErrUnavailable) {
				t.Fatalf("workflow begin under fail open: %v, want unavailable", err)
			}
		})
	}
}

// A closed connection is unavailable too, still matching the nats.go
// error; under fail open it is a degraded grant.
func TestClosedConnection(t *testing.T) {
	url := noLedger(t, false)
	for _, open := range []bool{false, true} {
		nc := ledgertest.Connect(t, url)
		var opts []client.Option
		if open {
			opts = append(opts, client.WithFailurePolicy(client.FailOpen))
		}
		c, err := client.New(nc, append(opts, client.WithTimeout(shortTimeout))...)
		if err != nil {
			t.Fatal(err)
		}
		nc.Close()
		for _, d := range decisionCalls {
			degraded, err := d.call(context.Background(), c)
			switch {
			case open && (err != nil || !degraded):
				t.Fatalf("fail open, %s on a closed connection: degraded %v, err %v", d.name, degraded, err)
			case !open && (!errors.Is(err, client.ErrUnavailable) || !errors.Is(err, nats.ErrConnectionClosed)):
				t.Fatalf("fail closed, %s on a closed connection: %v, want unavailable wrapping nats.ErrConnectionClosed", d.name, err)
			}
		}
	}
}

// Under fail open a live ledger's answers stay answers: a denial is a
// denial, a bad request or a conflict an error, a cancelled call the
// caller's own error; only a ledger that does not answer is degraded.
func TestFailOpenKeepsAnswers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l := ledgertest.StartLedger(t, ledger.Config{})
	c, err := client.New(ledgertest.Connect(t, l.ClientURL()), client.WithFailurePolicy(client.FailOpen))
	if err != nil {
		t.Fatal(err)
	}
	day := events.Window{Kind: events.Calendar, Unit: events.UnitDay}
	if _, err := c.SetQuota(ctx, "acme", events.Quota{ID: "cap", Limits: []events.Limit{
		{Metric: events.MetricTokens, Max: 100, Window: day},
		{Metric: events.ActionMetric("new_run"), Max: 1, Window: day},
	}}); err != nil {
		t.Fatal(err)
	}
	big := events.Amounts{Tokens: 1000}

	chk, err := c.Check(ctx, api.CheckRequest{Tenant: "acme", Dims: testDims, Request: big})
	if err != nil || chk.Allowed || chk.Degraded || chk.Code != events.CodeQuotaExceeded {
		t.Fatalf("check past the limit: %+v, %v; want a denial", chk, err)
	}
	if _, err := c.Consume(ctx, "acme", client.NewID(), testDims, big); !errors.Is(err, events.ErrQuotaExceeded) {
		t.Fatalf("consume past the limit: %v, want quota_exceeded", err)
	}
	if _, err := c.Reserve(ctx, "acme", testDims, big, client.ReserveOptions{}); !errors.Is(err, events.ErrQuotaExceeded) {
		t.Fatalf("reserve past the limit: %v, want quota_exceeded", err)
	}
	act := api.LimitActionRequest{Tenant: "acme", Action: "new_run", Dims: testDims}
	if r, err := c.LimitAction(ctx, act); err != nil || r.Degraded {
		t.Fatalf("first new_run: %+v, %v", r, err)
	}
	if _, err := c.LimitAction(ctx, act); !errors.Is(err, events.ErrQuotaExceeded) {
		t.Fatalf("second new_run: %v, want quota_exceeded", err)
	}

	// Bad requests: refused by the client, and by the ledger.
	if _, err := c.Check(ctx, api.CheckRequest{Tenant: "not a token"}); !errors.Is(err, events.ErrInvalidArgument) {
		t.Fatalf("check of a bad tenant: %v, want invalid_argument", err)
	}
	if _, err := c.Reserve(ctx, "acme", testDims, testAmounts, client.ReserveOptions{TTL: 48 * time.Hour}); !errors.Is(err, events.ErrInvalidArgument) {
		t.Fatalf("reserve with a 48 h ttl: %v, want invalid_argument", err)
	}

	// A granted reservation is real, and settles with the ledger; its id
	// reused for another call is a conflict.
	r, err := c.Reserve(ctx, "acme", testDims, testAmounts, client.ReserveOptions{ID: "r-live"})
	if err != nil || r.Degraded || r.Reply.Outcome != "created" {
		t.Fatalf("reserve: %+v, %v", r, err)
	}
	if rec, err := r.Reconcile(ctx, testAmounts); err != nil || rec.Degraded || rec.Outcome != "reconciled" {
		t.Fatalf("reconcile: %+v, %v", rec, err)
	}
	if _, err := c.Reserve(ctx, "acme", testDims, events.Amounts{Tokens: 1}, client.ReserveOptions{ID: "r-live"}); !errors.Is(err, events.ErrConflict) {
		t.Fatalf("reserve with a settled id: %v, want conflict", err)
	}

	// The caller's own cancellation is not the ledger's absence.
	cctx, ccancel := context.WithCancel(ctx)
	ccancel()
	if _, err := c.Check(cctx, api.CheckRequest{Tenant: "acme"}); !errors.Is(err, context.Canceled) || errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("check with a cancelled context: %v, want context.Canceled", err)
	}
	if n := c.Degraded(); n != 0 {
		t.Fatalf("Degraded() = %d with a live ledger", n)
	}
}

// Degraded is the client's own: never on the wire, in either encoding, so
// the hand-written codecs and reflection still agree byte for byte.
func TestDegradedNotOnTheWire(t *testing.T) {
	for _, enc := range []api.Encoding{api.Msgpack, api.JSON} {
		for _, pair := range [][2]any{
			{api.CheckReply{Allowed: true}, api.CheckReply{Allowed: true, Degraded: true}},
			{&api.DecisionReply{Outcome: "x"}, &api.DecisionReply{Outcome: "x", Degraded: true}},
			{&api.ReserveReply{Reservation: "r"}, &api.ReserveReply{Reservation: "r", Degraded: true}},
		} {
			a, errA := api.Encode(enc, pair[0])
			b, errB := api.Encode(enc, pair[1])
			if errA != nil || errB != nil || !bytes.Equal(a, b) {
				t.Fatalf("%s: %T encodes Degraded (%q vs %q; %v %v)", enc, pair[0], a, b, errA, errB)
			}
		}
	}
	if _, err := client.New(ledgertest.Connect(t, noLedger(t, false)), client.WithFailurePolicy(client.FailurePolicy(7))); err == nil {
		t.Fatal("an unknown failure policy must be refused")
	}
}
