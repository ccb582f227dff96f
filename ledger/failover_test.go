package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
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

// startMember runs a ledger process against the NATS server at url, named
// name, owning and standing by for the partitions given.
func startMember(t *testing.T, url, dir, name, owns, standby string) *exec.Cmd {
	t.Helper()
	return startChild(t, "ledger", envURL+"="+url, envData+"="+dir, envMember+"="+name, envOwns+"="+owns, envStandby+"="+standby)
}

// partitionState is what member says it does for partition p ("" when it
// does not answer or does not fold p), and whether it is ready.
func partitionState(ctx context.Context, c *client.Client, member string, p int) (string, bool) {
	st, err := c.Member(ctx, member)
	if err != nil {
		return "", false
	}
	for _, ps := range st.Partitions {
		if ps.Partition == p {
			return ps.State, st.Ready
		}
	}
	return "", st.Ready
}

func waitState(t *testing.T, ctx context.Context, c *client.Client, member string, p int, want string) {
	t.Helper()
	ledgertest.Eventually(t, time.Minute, member+fmt.Sprintf(" to be %s of partition %d", want, p), func() bool {
		st, ready := partitionState(ctx, c, member, p)
		return st == want && ready
	})
}

func kill(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the process did not die of SIGKILL: %v", err)
	}
}

// lastDecision is the stream sequence of tenant's last decision.
func lastDecision(t *testing.T, ctx context.Context, js jetstream.JetStream, tenant string) uint64 {
	t.Helper()
	st, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(ctx, events.Subject(tenant, events.ClassDecision))
	if err != nil {
		t.Fatal(err)
	}
	return m.Sequence
}

// The owner of a hot partition, a real process, is killed with SIGKILL
// while 64 callers reserve against a hard limit: its standby takes over,
// answers from state at least as fresh as the dead owner's last decision,
// and exactly the limit is granted across the switch. The old owner,
// revived, gets its partitions back, caught up on everything decided while
// it was down.
func TestOwnerKilledStandbyTakesOver(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	srv := ledgertest.StartServer(t, "")
	url := srv.URL()
	const tenant, n = "hot", 3000
	p := events.Partition(tenant)
	dirA := t.TempDir()
	a := startMember(t, url, dirA, "member-a", "all", "")
	b := startMember(t, url, t.TempDir(), "member-b", "", "all")
	nc := ledgertest.Connect(t, url)
	js := ledgertest.JetStream(t, nc)
	c, _ := client.New(nc, client.WithTimeout(2*time.Second))
	waitState(t, ctx, c, "member-a", p, "owner")
	waitState(t, ctx, c, "member-b", p, "standby")
	ledgertest.Eventually(t, 30*time.Second, "the quota to be set", func() bool {
		_, err := c.SetQuota(ctx, tenant, events.Quota{ID: "cap", Limits: []events.Limit{dayLimit(events.MetricTokens, n)}})
		return err == nil
	})

	conns := []*nats.Conn{ledgertest.Connect(t, url), ledgertest.Connect(t, url), ledgertest.Connect(t, url), ledgertest.Connect(t, url)}
	var granted atomic.Int64
	reserved := make(chan error, 1)
	dims := events.Dimensions{"user": "u"}
	go func() { reserved <- reserveAll(ctx, conns, tenant, dims, 64, &granted) }()
	ledgertest.Eventually(t, time.Minute, "a tenth of the limit to be granted", func() bool { return granted.Load() >= n/10 })
	kill(t, a)
	killed := time.Now()
	ledgertest.Eventually(t, time.Minute, "member-b to take over", func() bool {
		st, _ := partitionState(ctx, c, "member-b", p)
		return st == "owner"
	})
	t.Logf("member-b owns partition %d %s after the owner's SIGKILL (lease TTL 2s), %d of %d granted by then", p, time.Since(killed).Round(time.Millisecond), granted.Load(), n)
	if err := <-reserved; err != nil {
		t.Fatal(err)
	}
	if g := granted.Load(); g != n {
		t.Fatalf("granted %d against a hard limit of %d across the failover", g, n)
	}
	checkHeld := func(who string) {
		t.Helper()
		last := lastDecision(t, ctx, js, tenant)
		r, err := c.Check(ctx, api.CheckRequest{Tenant: tenant, Dims: dims, Request: events.Amounts{Tokens: 1}})
		if err != nil {
			t.Fatal(err)
		}
		if r.AppliedSeq < last {
			t.Fatalf("%s answers from sequence %d, older than the last decision %d", who, r.AppliedSeq, last)
		}
		if r.Allowed || len(r.Limits) != 1 || r.Limits[0].Reserved != n {
			t.Fatalf("%s: check %+v, want denied with %d reserved", who, r, n)
		}
	}
	checkHeld("member-b")

	// The old owner comes back on its data: once it has caught up, the
	// standby gives its partitions back.
	a = startMember(t, url, dirA, "member-a", "all", "")
	revived := time.Now()
	ledgertest.Eventually(t, time.Minute, "member-a to get the partition back", func() bool {
		st, _ := partitionState(ctx, c, "member-a", p)
		return st == "owner"
	})
	t.Logf("member-a owns partition %d again %s after it was started again", p, time.Since(revived).Round(time.Millisecond))
	waitState(t, ctx, c, "member-b", p, "standby")
	checkHeld("member-a, revived")
	if _, err := c.Reserve(ctx, tenant, dims, events.Amounts{Tokens: 1}, client.ReserveOptions{}); !errors.Is(err, events.ErrQuotaExceeded) {
		t.Fatalf("reserve past the limit after two failovers: %v, want quota_exceeded", err)
	}
	for name, cmd := range map[string]*exec.Cmd{"member-a": a, "member-b": b} {
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Errorf("%s did not stop cleanly: %v", name, err)
		}
	}
}

// The owner is paused (SIGSTOP: a stop-the-world pause, a swapped-out
// machine) while 64 callers reserve against a hard limit; its lease lapses
// and the standby takes over. When the old owner resumes (SIGCONT), it
// still holds requests it took before the pause and decides them on the
// state it had: the fence on the tenant's decision subject refuses those
// late appends, it catches up and decides again, and it stops answering
// as soon as its renewal is refused. Exactly the limit is granted.
func TestPausedOwnerIsFenced(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	srv := ledgertest.StartServer(t, "")
	url := srv.URL()
	const tenant, n = "hot", 3000
	p := events.Partition(tenant)
	a := startMember(t, url, t.TempDir(), "member-a", "all", "")
	b := startMember(t, url, t.TempDir(), "member-b", "", "all")
	nc := ledgertest.Connect(t, url)
	c, _ := client.New(nc, client.WithTimeout(2*time.Second))
	waitState(t, ctx, c, "member-a", p, "owner")
	waitState(t, ctx, c, "member-b", p, "standby")
	ledgertest.Eventually(t, 30*time.Second, "the quota to be set", func() bool {
		_, err := c.SetQuota(ctx, tenant, events.Quota{ID: "cap", Limits: []events.Limit{dayLimit(events.MetricTokens, n)}})
		return err == nil
	})
	conns := []*nats.Conn{ledgertest.Connect(t, url), ledgertest.Connect(t, url), ledgertest.Connect(t, url), ledgertest.Connect(t, url)}
	var granted atomic.Int64
	reserved := make(chan error, 1)
	dims := events.Dimensions{"user": "u"}
	go func() { reserved <- reserveAll(ctx, conns, tenant, dims, 64, &granted) }()
	ledgertest.Eventually(t, time.Minute, "a tenth of the limit to be granted", func() bool { return granted.Load() >= n/10 })
	if err := a.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	paused := time.Now()
	ledgertest.Eventually(t, time.Minute, "member-b to take over from the paused owner", func() bool {
		st, _ := partitionState(ctx, c, "member-b", p)
		return st == "owner"
	})
	t.Logf("member-b owns partition %d %s into member-a's pause", p, time.Since(paused).Round(time.Millisecond))
	// Let member-b decide for a while, so member-a's state is stale.
	before := granted.Load()
	ledgertest.Eventually(t, time.Minute, "member-b to grant more", func() bool { return granted.Load() >= before+n/10 })
	if err := a.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if err := <-reserved; err != nil {
		t.Fatal(err)
	}
	if g := granted.Load(); g != n {
		t.Fatalf("granted %d against a hard limit of %d with a paused owner resuming", g, n)
	}
	r, err := c.Check(ctx, api.CheckRequest{Tenant: tenant, Dims: dims})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Limits) != 1 || r.Limits[0].Reserved != n {
		t.Fatalf("check after the pause: %+v, want %d reserved", r, n)
	}
	for name, cmd := range map[string]*exec.Cmd{"member-a": a, "member-b": b} {
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Errorf("%s did not stop cleanly: %v", name, err)
		}
	}
}
