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

// hotFailover is the setup of the failover tests: member-a owns every
// partition, member-b stands by for all, a hard limit of hotLimit tokens on
// tenant "hot", and 64 callers reserving one token at a time until denied,
// already past a tenth of the limit.
type hotFailover struct {
	url      string
	dirA     string
	a, b     *exec.Cmd
	c        *client.Client
	js       jetstream.JetStream
	p        int
	dims     events.Dimensions
	granted  atomic.Int64
	reserved chan error // the reservers' end
}

const hotTenant, hotLimit = "hot", 3000

func startHotFailover(t *testing.T, ctx context.Context) *hotFailover {
	t.Helper()
	srv := ledgertest.StartServer(t, "")
	f := &hotFailover{url: srv.URL(), dirA: t.TempDir(), p: events.Partition(hotTenant), dims: events.Dimensions{"user": "u"}, reserved: make(chan error, 1)}
	f.a = startMember(t, f.url, f.dirA, "member-a", "all", "")
	f.b = startMember(t, f.url, t.TempDir(), "member-b", "", "all")
	nc := ledgertest.Connect(t, f.url)
	f.js = ledgertest.JetStream(t, nc)
	f.c, _ = client.New(nc, client.WithTimeout(2*time.Second))
	waitState(t, ctx, f.c, "member-a", f.p, "owner")
	waitState(t, ctx, f.c, "member-b", f.p, "standby")
	ledgertest.Eventually(t, 30*time.Second, "the quota to be set", func() bool {
		_, err := f.c.SetQuota(ctx, hotTenant, events.Quota{ID: "cap", Limits: []events.Limit{dayLimit(events.MetricTokens, hotLimit)}})
		return err == nil
	})
	conns := []*nats.Conn{ledgertest.Connect(t, f.url), ledgertest.Connect(t, f.url), ledgertest.Connect(t, f.url), ledgertest.Connect(t, f.url)}
	go func() { f.reserved <- reserveAll(ctx, conns, hotTenant, f.dims, 64, &f.granted) }()
	ledgertest.Eventually(t, time.Minute, "a tenth of the limit to be granted", func() bool { return f.granted.Load() >= hotLimit/10 })
	return f
}

// waitOwner waits until member owns the hot partition and says how long
// that took since since.
func (f *hotFailover) waitOwner(t *testing.T, ctx context.Context, member string, since time.Time) time.Duration {
	t.Helper()
	ledgertest.Eventually(t, time.Minute, member+" to own the hot partition", func() bool {
		st, _ := partitionState(ctx, f.c, member, f.p)
		return st == "owner"
	})
	return time.Since(since).Round(time.Millisecond)
}

// exactlyTheLimit waits for the reservers and checks that they were
// granted exactly the limit, as the owner's check says too, from state at
// least as fresh as stream sequence atLeast.
func (f *hotFailover) exactlyTheLimit(t *testing.T, ctx context.Context, atLeast uint64) {
	t.Helper()
	if err := <-f.reserved; err != nil {
		t.Fatal(err)
	}
	if g := f.granted.Load(); g != hotLimit {
		t.Fatalf("granted %d against a hard limit of %d", g, hotLimit)
	}
	f.limitHeld(t, ctx, atLeast)
}

// limitHeld checks that the owner answers from state at least as fresh as
// stream sequence atLeast, with the whole limit held. The check asks for
// the tenant's last decision to be folded first (after_seq): a decision is
// answered once appended, not once folded, so the last grants can still be
// on their way into the owner's projection when the callers are done.
func (f *hotFailover) limitHeld(t *testing.T, ctx context.Context, atLeast uint64) {
	t.Helper()
	r, err := f.c.Check(ctx, api.CheckRequest{Tenant: hotTenant, Dims: f.dims, Request: events.Amounts{Tokens: 1}, AfterSeq: lastDecision(t, ctx, f.js, hotTenant)})
	if err != nil {
		t.Fatal(err)
	}
	if r.AppliedSeq < atLeast {
		t.Fatalf("the owner answers from sequence %d, older than the old owner's last decision %d", r.AppliedSeq, atLeast)
	}
	if r.Allowed || len(r.Limits) != 1 || r.Limits[0].Reserved != hotLimit {
		t.Fatalf("check %+v, want denied with %d reserved", r, hotLimit)
	}
}

// stop ends both members with SIGTERM.
func (f *hotFailover) stop(t *testing.T) {
	t.Helper()
	for name, cmd := range map[string]*exec.Cmd{"member-a": f.a, "member-b": f.b} {
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Errorf("%s did not stop cleanly: %v", name, err)
		}
	}
}

// The owner of a hot partition, a real process, is killed with SIGKILL
// while 64 callers reserve against a hard limit: its standby takes over,
// answers from state at least as fresh as the dead owner's last decision,
// and exactly the limit is granted across the switch. The old owner,
// revived, gets its partitions back, caught up on everything decided while
// it was down.
func TestOwnerKilledStandbyTakesOver(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	f := startHotFailover(t, ctx)
	kill(t, f.a)
	deadLast := lastDecision(t, ctx, f.js, hotTenant) // nobody decides until the standby owns
	t.Logf("member-b owns partition %d %s after the owner's SIGKILL (lease TTL 2s), %d of %d granted by then",
		f.p, f.waitOwner(t, ctx, "member-b", time.Now()), f.granted.Load(), hotLimit)
	f.exactlyTheLimit(t, ctx, deadLast)

	// The old owner comes back on its data: once it has caught up, the
	// standby gives its partitions back.
	f.a = startMember(t, f.url, f.dirA, "member-a", "all", "")
	t.Logf("member-a owns partition %d again %s after it was started again", f.p, f.waitOwner(t, ctx, "member-a", time.Now()))
	waitState(t, ctx, f.c, "member-b", f.p, "standby")
	// Revived, caught up on what was decided while it was down (member-b
	// decides no more once it has given the partition back).
	f.limitHeld(t, ctx, lastDecision(t, ctx, f.js, hotTenant))
	if _, err := f.c.Reserve(ctx, hotTenant, f.dims, events.Amounts{Tokens: 1}, client.ReserveOptions{}); !errors.Is(err, events.ErrQuotaExceeded) {
		t.Fatalf("reserve past the limit after two changes of owner: %v, want quota_exceeded", err)
	}
	f.stop(t)
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
	f := startHotFailover(t, ctx)
	if err := f.a.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	paused := lastDecision(t, ctx, f.js, hotTenant) // a paused owner appends nothing
	t.Logf("member-b owns partition %d %s into member-a's pause", f.p, f.waitOwner(t, ctx, "member-b", time.Now()))
	// Let member-b decide for a while, so member-a's state is stale.
	before := f.granted.Load()
	ledgertest.Eventually(t, time.Minute, "member-b to grant more", func() bool { return f.granted.Load() >= before+hotLimit/10 })
	if err := f.a.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	f.exactlyTheLimit(t, ctx, paused)
	f.stop(t)
}
