package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ledgerworks/ledger/api"
	"github.com/ledgerworks/ledger/client"
	"github.com/ledgerworks/ledger/cluster"
	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/internal/ledgertest"
	"github.com/ledgerworks/ledger/ledger"
	"github.com/ledgerworks/ledger/projections"
	"github.com/ledgerworks/ledger/replay"
)

// Tests of the ledger on a 3-node JetStream cluster (ledgertest.Cluster):
// the node leading the stream killed mid-ingest, and a network partition
// that leaves one node, and the ledger process attached to it, in a
// minority. The ledger processes are real child processes (startChild).

// startClusterMember runs a ledger process against urls (one URL or a
// comma-separated list) with its stream and lease bucket at replicas.
func startClusterMember(t *testing.T, urls, dir, name, owns, standby string, replicas int) *exec.Cmd {
	t.Helper()
	return startChild(t, "ledger", envURL+"="+urls, envData+"="+dir, envMember+"="+name,
		envOwns+"="+owns, envStandby+"="+standby, envReplicas+"="+strconv.Itoa(replicas))
}

// stopMember stops a ledger process with SIGTERM and waits (bounded) for
// it to exit cleanly.
func stopMember(t *testing.T, cmd *exec.Cmd, name string) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM %s: %v", name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("%s did not stop cleanly on SIGTERM: %v", name, err)
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-exited
		t.Fatalf("%s did not exit within 20s of SIGTERM", name)
	}
}

// owners asks every member for its status and returns who owns each
// partition (several names when more than one claims it) and whether every
// member answered and is ready.
func owners(ctx context.Context, c *client.Client, members ...string) (map[int][]string, bool) {
	out := map[int][]string{}
	for _, m := range members {
		st, err := c.Member(ctx, m)
		if err != nil || !st.Ready {
			return nil, false
		}
		for _, ps := range st.Partitions {
			if ps.State == "owner" {
				out[ps.Partition] = append(out[ps.Partition], m)
			}
		}
	}
	return out, true
}

// waitOneOwnerEach waits until every partition has exactly one owner among
// members, all of them ready, and returns the owners.
func waitOneOwnerEach(t *testing.T, ctx context.Context, c *client.Client, within time.Duration, members ...string) map[int]string {
	t.Helper()
	var got map[int][]string
	ledgertest.Eventually(t, within, "every partition to have exactly one owner", func() bool {
		var ok bool
		if got, ok = owners(ctx, c, members...); !ok {
			return false
		}
		for p := range events.Partitions {
			if len(got[p]) != 1 {
				return false
			}
		}
		return true
	})
	out := map[int]string{}
	for p, ms := range got {
		out[p] = ms[0]
	}
	return out
}

// waitOrDump is ledgertest.Eventually that, on timeout, says what cond
// last saw (why) and what every member reports about itself.
func waitOrDump(t *testing.T, ctx context.Context, c *client.Client, within time.Duration, what string, cond func() bool, why func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	ledgertest.Eventually(t, within+time.Minute, what, func() bool {
		if cond() {
			return true
		}
		if time.Now().Before(deadline) {
			return false
		}
		t.Logf("waiting for %s: %s", what, why())
		sts, err := c.Members(ctx, time.Second)
		if err != nil {
			t.Logf("members: %v", err)
		}
		for _, st := range sts {
			t.Logf("member %s: ready %v, applied %d, stream %d, lag %d, partitions %+v", st.Member, st.Ready, st.AppliedSeq, st.StreamSeq, st.Lag, st.Partitions)
		}
		t.Fatalf("timed out after %s waiting for %s", within, what)
		return false
	})
}

// requireR3 checks that the ledger stream and the lease bucket have three
// replicas, placed on three nodes.
func requireR3(t *testing.T, ctx context.Context, js jetstream.JetStream) {
	t.Helper()
	for _, name := range []string{events.StreamName, "KV_" + cluster.Bucket} {
		var info *jetstream.StreamInfo
		ledgertest.Eventually(t, 20*time.Second, "stream info of "+name, func() bool {
			s, err := js.Stream(ctx, name)
			if err != nil {
				return false
			}
			info, err = s.Info(ctx)
			return err == nil
		})
		if info.Config.Replicas != 3 {
			t.Fatalf("stream %s has %d replicas, want 3", name, info.Config.Replicas)
		}
		if info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != 2 {
			t.Fatalf("stream %s is not placed on three nodes: %+v", name, info.Cluster)
		}
	}
	kv, err := js.KeyValue(ctx, cluster.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r := st.Config().Replicas; r != 3 {
		t.Fatalf("key-value bucket %s has %d replicas, want 3", cluster.Bucket, r)
	}
}

// streamLastSeq is the ledger stream's last sequence, asked of its leader.
func streamLastSeq(t *testing.T, ctx context.Context, js jetstream.JetStream) uint64 {
	t.Helper()
	var last uint64
	ledgertest.Eventually(t, 20*time.Second, "the stream's last sequence", func() bool {
		s, err := js.Stream(ctx, events.StreamName)
		if err != nil {
			return false
		}
		info, err := s.Info(ctx)
		if err != nil {
			return false
		}
		last = info.State.LastSeq
		return true
	})
	return last
}

// ingestRound is one Record+Flush round of the producer in
// TestStreamLeaderKilledMidIngest.
type ingestRound struct {
	start, flush, end time.Time // begun, Flush called, Flush returned
	ok                bool
}

// The NATS node that leads the ledger stream is killed while a producer
// publishes through the Go client: ingest resumes once the two other nodes
// have elected a new leader, no acknowledged event is lost and none is
// counted twice (a round whose flush failed is recorded again with the same
// event ids), and both ledger processes, connected to all three nodes, stay
// up and reconnect by themselves.
func TestStreamLeaderKilledMidIngest(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	c := ledgertest.StartCluster(t, 3)
	urls := c.URLs()
	nc := ledgertest.Connect(t, urls)
	js := ledgertest.JetStream(t, nc)
	// Both members start at once on the new cluster and create the stream
	// and the lease bucket, at R3.
	a := startClusterMember(t, urls, t.TempDir(), "member-a", "0-7", "8-15", 3)
	b := startClusterMember(t, urls, t.TempDir(), "member-b", "8-15", "0-7", 3)
	cl, _ := client.New(nc, client.WithTimeout(2*time.Second))
	owned := waitOneOwnerEach(t, ctx, cl, time.Minute, "member-a", "member-b")
	t.Logf("owners: %v", owned)
	requireR3(t, ctx, js)

	// Tenants on both halves of the partitions, so both owners fold usage.
	tenants := make([]string, 8)
	halves := map[bool]bool{}
	for i := range tenants {
		tenants[i] = fmt.Sprintf("acct-%d", i)
		halves[events.Partition(tenants[i]) < 8] = true
	}
	if len(halves) != 2 {
		t.Fatalf("tenants %v all fall in one half of the partitions", tenants)
	}

	// The producer's own connection to every node, reconnecting forever.
	pnc, err := nats.Connect(urls, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pnc.Close)
	p, err := client.NewProducer(pnc, client.ProducerOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// Ingest runs in rounds of about 100 ms: one event per tenant every
	// 5 ms, published by the producer as it goes (its batches linger 2 ms),
	// so that acknowledgements are pending at any moment, then a Flush. A
	// round's events count as acknowledged once its Flush succeeds; a round
	// whose Flush fails is recorded again, the same events with the same
	// ids, until a Flush succeeds.
	const steps = 20
	var (
		mu       sync.Mutex
		rounds   []ingestRound
		failures []string
		ackedN   = map[string]int64{} // events acknowledged per tenant
		ackedIn  = map[string]int64{} // their input tokens
		retried  int                  // rounds recorded more than once
		stop     = make(chan struct{})
	)
	okRounds := func(after time.Time) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, r := range rounds {
			if r.ok && !r.start.Before(after) {
				n++
			}
		}
		return n
	}
	// The producer's context: a test that fails early aborts it at cleanup.
	pctx, abort := context.WithCancel(ctx)
	var ingestErr error
	ingestDone := make(chan struct{})
	go func() {
		defer close(ingestDone)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			default:
			}
			// The round is recorded until acknowledged, even once stop is
			// closed: what was recorded must be acknowledged to be counted.
			var evs []events.Event
			for attempt := 0; ; attempt++ {
				r := ingestRound{start: time.Now()}
				err := func() error {
					if attempt > 0 { // the same events again, at once
						for _, ev := range evs {
							if err := p.Record(pctx, ev); err != nil {
								return err
							}
						}
					} else {
						for j := range steps {
							select {
							case <-tick.C:
							case <-pctx.Done():
								return pctx.Err()
							}
							now := time.Now()
							for _, tenant := range tenants {
								ev := events.New(fmt.Sprintf("ev-%s-%d-%d", tenant, k, j), tenant, now,
									events.Dimensions{"user": "u", "model": "m"},
									&events.UsageRecorded{Amounts: events.Amounts{InputTokens: int64(1 + (k+j)%7), Requests: 1}})
								evs = append(evs, ev)
								if err := p.Record(pctx, ev); err != nil {
									return err
								}
							}
						}
					}
					fctx, cancel := context.WithTimeout(pctx, 20*time.Second)
					defer cancel()
					r.flush = time.Now()
					return p.Flush(fctx)
				}()
				r.end, r.ok = time.Now(), err == nil
				mu.Lock()
				rounds = append(rounds, r)
				if err != nil {
					failures = append(failures, fmt.Sprintf("round %d attempt %d (%s to %s): %v", k, attempt, r.start.Format(time.StampMilli), r.end.Format(time.StampMilli), err))
				} else {
					for _, ev := range evs {
						ackedN[ev.Tenant]++
						ackedIn[ev.Tenant] += ev.Payload.(*events.UsageRecorded).Amounts.InputTokens
					}
					if attempt > 0 {
						retried++
					}
				}
				mu.Unlock()
				if err == nil {
					break
				}
				if pctx.Err() != nil {
					ingestErr = fmt.Errorf("round %d never acknowledged: %w", k, err)
					return
				}
			}
		}
	}()
	t.Cleanup(func() { abort(); <-ingestDone })
	t.Cleanup(func() { // registered last, runs first: what the producer saw
		if !t.Failed() {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		t.Logf("%d rounds tried, %d failed flushes", len(rounds), len(failures))
		for _, f := range failures[max(0, len(failures)-5):] {
			t.Logf("failed flush: %s", f)
		}
		if len(rounds) > 0 {
			r := rounds[len(rounds)-1]
			t.Logf("last round: started %s, ended %s, ok %v", r.start.Format(time.StampMilli), r.end.Format(time.StampMilli), r.ok)
		}
	})
	stopIngest := func() {
		t.Helper()
		close(stop)
		select {
		case <-ingestDone:
			if ingestErr != nil {
				t.Fatal(ingestErr)
			}
		case <-time.After(60 * time.Second):
			t.Fatal("the producer's last round was not acknowledged within 60s")
		}
	}

	start := time.Now()
	ledgertest.Eventually(t, 30*time.Second, "10 acknowledged rounds before the kill", func() bool { return okRounds(start) >= 10 })
	leader := c.StreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, events.StreamName)
	if leader < 0 {
		leader = c.WaitStreamLeader(t, events.StreamName, 20*time.Second)
	}
	killAt := time.Now()
	t.Logf("killing node %d, the stream leader, at %s", leader, killAt.Format(time.StampMilli))
	c.Kill(leader)
	killed := time.Now()
	// The producer retries a batch whose acknowledgement failed; a round
	// whose Flush fails after the retries is recorded again. Either way a
	// round begun after the kill must be acknowledged once the two other
	// nodes have a leader (an election takes 4 to 9 s). A batch the killed
	// leader received but never acknowledged must fail (and be retried),
	// not hold every later Flush forever: when this wait times out with
	// only "context deadline exceeded" flush failures, that is what
	// happened.
	ledgertest.Eventually(t, 45*time.Second, "a round begun after the kill to be acknowledged", func() bool { return okRounds(killed) > 0 })
	// Ingest resumed with the first Flush called after the kill that
	// succeeded: every batch it waited for was acknowledged.
	mu.Lock()
	var resumed time.Time
	lastBefore := killAt
	for _, r := range rounds {
		if r.ok && r.end.Before(killAt) {
			lastBefore = r.end
		}
		if r.ok && !r.flush.Before(killed) {
			resumed = r.end
			break
		}
	}
	mu.Unlock()
	newLeader := c.WaitStreamLeader(t, events.StreamName, 30*time.Second)
	t.Logf("killed node %d, the stream leader (kill took %s); node %d leads now; first flush acknowledged %s after the kill (%s since the last one before it)",
		leader, killed.Sub(killAt).Round(time.Millisecond), newLeader,
		resumed.Sub(killAt).Round(time.Millisecond), resumed.Sub(lastBefore).Round(time.Millisecond))

	// Ingest goes on on two nodes, then on three again.
	resumedAt := time.Now()
	ledgertest.Eventually(t, 30*time.Second, "10 rounds acknowledged on two nodes", func() bool { return okRounds(resumedAt) >= 10 })
	restarting := time.Now()
	c.Restart(leader)
	restarted := time.Now()
	t.Logf("node %d restarted and current again in %s", leader, restarted.Sub(restarting).Round(time.Millisecond))
	ledgertest.Eventually(t, 30*time.Second, "10 rounds acknowledged after the restart", func() bool { return okRounds(restarted) >= 10 })
	stopIngest()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = p.Close(cctx)
	cancel()
	if err != nil {
		t.Fatalf("close the producer: %v", err)
	}

	mu.Lock()
	var wantN, wantIn int64
	for _, tenant := range tenants {
		wantN += ackedN[tenant]
		wantIn += ackedIn[tenant]
	}
	t.Logf("acknowledged %d events (%d input tokens) in %d rounds; %d rounds recorded again after a failed flush", wantN, wantIn, len(rounds)-len(failures), retried)
	for i, f := range failures {
		if i == 5 {
			t.Logf("... %d failed flushes in all", len(failures))
			break
		}
		t.Logf("failed flush: %s", f)
	}
	mu.Unlock()

	// Every acknowledged event is folded exactly once: each tenant's
	// totals, asked of its partition's owner after the stream's last
	// sequence, equal what was acknowledged for it.
	last := streamLastSeq(t, ctx, js)
	var gotN, gotIn int64
	for _, tenant := range tenants {
		var (
			u       *api.UsageReply
			lastErr error
		)
		waitOrDump(t, ctx, cl, 30*time.Second, "usage of "+tenant+fmt.Sprintf(" (partition %d)", events.Partition(tenant)), func() bool {
			u, lastErr = cl.Usage(ctx, tenant, last)
			return lastErr == nil
		}, func() string { return fmt.Sprintf("last error: %v", lastErr) })
		n, in := u.Totals[events.MetricRequests], u.Totals[events.MetricInputTokens]
		if n != ackedN[tenant] || in != ackedIn[tenant] {
			t.Errorf("%s: folded %d events, %d input tokens; acknowledged %d, %d", tenant, n, in, ackedN[tenant], ackedIn[tenant])
		}
		if u.AppliedSeq < last {
			t.Errorf("%s answered at sequence %d, before the last %d", tenant, u.AppliedSeq, last)
		}
		gotN += n
		gotIn += in
	}
	if gotN != wantN || gotIn != wantIn {
		t.Fatalf("folded %d events (%d input tokens), acknowledged %d (%d)", gotN, gotIn, wantN, wantIn)
	}

	// Both ledger processes survived on their own and answer: nothing
	// waited for them (ProcessState stays nil until Wait), so the answer to
	// a status request, and a clean exit on SIGTERM below (a process that
	// had died would report its crash to Wait), show they were up all along.
	for name, cmd := range map[string]*exec.Cmd{"member-a": a, "member-b": b} {
		if cmd.ProcessState != nil {
			t.Fatalf("%s exited: %v", name, cmd.ProcessState)
		}
		ledgertest.Eventually(t, 30*time.Second, name+" to answer its status, caught up", func() bool {
			st, err := cl.Member(ctx, name)
			return err == nil && st.Ready && st.AppliedSeq >= last
		})
	}
	t.Logf("owners at the end: %v", waitOneOwnerEach(t, ctx, cl, 30*time.Second, "member-a", "member-b"))
	stopMember(t, a, "member-a")
	stopMember(t, b, "member-b")
}

// reserveAttempt is one Reserve call of a reserver in
// TestNetworkPartitionMinorityStopsDeciding.
type reserveAttempt struct {
	id         string
	minority   bool
	sent, done time.Time
	outcome    string // "created" or "exists" when granted
	err        error
}

// A network partition, not a crash: the NATS node leading the stream is cut
// off from the two others, with the ledger process that owns every
// partition attached to it (and only to it), while reservers on both sides
// reserve against a hard limit. The minority side stops deciding: its owner
// cannot renew its leases or append, so its clients get a typed unavailable
// and never a grant. The majority side's standby takes over once the lease
// has lapsed and goes on deciding. After healing, exactly the limit is
// granted in total, and both processes hold the same projection.
func TestNetworkPartitionMinorityStopsDeciding(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	c := ledgertest.StartCluster(t, 3)
	// The stream first, so that the node to cut off can be its leader: the
	// minority then really loses the stream's leader.
	jsAll := ledgertest.JetStream(t, ledgertest.Connect(t, c.URLs()))
	if _, err := ledger.EnsureStream(ctx, jsAll, ledger.StreamOptions{Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	iso := c.WaitStreamLeader(t, events.StreamName, 20*time.Second)
	maj, other := (iso+1)%3, (iso+2)%3

	const tenant, n = "hot", 400
	p := events.Partition(tenant)
	dims := events.Dimensions{"user": "u"}
	dirA, dirB := t.TempDir(), t.TempDir()
	ncMaj := ledgertest.Connect(t, c.URL(maj))
	ncMin := ledgertest.Connect(t, c.URL(iso))
	cMaj, _ := client.New(ncMaj, client.WithTimeout(2*time.Second))
	cMin, _ := client.New(ncMin, client.WithTimeout(2*time.Second))
	a := startClusterMember(t, c.URL(iso), dirA, "member-a", "all", "", 3)
	waitState(t, ctx, cMaj, "member-a", p, "owner")
	b := startClusterMember(t, c.URL(maj), dirB, "member-b", "", "all", 3)
	waitState(t, ctx, cMaj, "member-b", p, "standby")
	requireR3(t, ctx, ledgertest.JetStream(t, ncMaj))
	ledgertest.Eventually(t, 30*time.Second, "the quota to be set", func() bool {
		_, err := cMaj.SetQuota(ctx, tenant, events.Quota{ID: "cap", Limits: []events.Limit{dayLimit(events.MetricTokens, n)}})
		return err == nil
	})

	// 64 reservers, a quarter of them on the node to be cut off. Each takes
	// a shared tick (10 ms) before every attempt, so that grants are spread
	// over the partition instead of all made before it, and a side that
	// answers "no responders" at once is not spun on.
	minConns := []*nats.Conn{ncMin, ledgertest.Connect(t, c.URL(iso))}
	majConns := []*nats.Conn{ncMaj, ledgertest.Connect(t, c.URL(maj)), ledgertest.Connect(t, c.URL(other)), ledgertest.Connect(t, c.URL(other))}
	const workers = 64
	var (
		granted, grantedMin, grantedMaj atomic.Int64
		unavailMin                      atomic.Int64
		logs                            = make([][]reserveAttempt, workers)
		fatal                           = make(chan error, workers)
		wg                              sync.WaitGroup
	)
	// The workers' own context: a test that fails early stops them at
	// cleanup, before the cluster goes.
	wctx, stopWorkers := context.WithCancel(ctx)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for w := range workers {
		minority := w%4 == 0
		var nc *nats.Conn
		if minority {
			nc = minConns[(w/4)%len(minConns)]
		} else {
			nc = majConns[w%len(majConns)]
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rc, _ := client.New(nc, client.WithTimeout(2*time.Second))
			defer rc.Close()
			for i := 0; ; i++ {
				id := fmt.Sprintf("w%d-r%d", w, i)
				for {
					select {
					case <-tick.C:
					case <-wctx.Done():
						fatal <- fmt.Errorf("worker %d: %w", w, wctx.Err())
						return
					}
					at := reserveAttempt{id: id, minority: minority, sent: time.Now()}
					r, err := rc.Reserve(wctx, tenant, dims, events.Amounts{Tokens: 1}, client.ReserveOptions{ID: id, TTL: 10 * time.Minute})
					at.done, at.err = time.Now(), err
					if err == nil {
						at.outcome = r.Reply.Outcome
					}
					logs[w] = append(logs[w], at)
					switch {
					case err == nil:
						granted.Add(1)
						if minority {
							grantedMin.Add(1)
						} else {
							grantedMaj.Add(1)
						}
					case errors.Is(err, events.ErrQuotaExceeded):
						return
					case errors.Is(err, events.ErrUnavailable), errors.Is(err, events.ErrConflict):
						if minority && errors.Is(err, events.ErrUnavailable) {
							unavailMin.Add(1)
						}
						continue // the same id: answered, never held twice
					default:
						fatal <- fmt.Errorf("worker %d, reservation %s: %w", w, id, err)
						return
					}
					break
				}
			}
		}()
	}
	reserved := make(chan struct{})
	go func() { wg.Wait(); close(reserved) }()
	t.Cleanup(func() { stopWorkers(); <-reserved })
	failed := func() {
		t.Helper()
		select {
		case err := <-fatal:
			t.Fatal(err)
		default:
		}
	}

	ledgertest.Eventually(t, 30*time.Second, "grants on both sides before the partition", func() bool {
		return grantedMin.Load() >= 5 && grantedMaj.Load() >= 5 && granted.Load() >= n/8
	})
	failed()
	if l := c.StreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, events.StreamName); l != iso {
		t.Logf("the stream's leader moved from node %d to node %d before the partition: the minority holds a follower", iso, l)
	}
	if s, err := jsAll.Stream(ctx, "KV_"+cluster.Bucket); err == nil {
		if info, err := s.Info(ctx); err == nil && info.Cluster != nil {
			t.Logf("cutting off node %d (n%d), leading the stream; the lease bucket's leader is %s", iso, iso, info.Cluster.Leader)
		}
	}
	isolating := time.Now()
	c.Isolate(iso)
	isolated := time.Now()
	beforeMin, beforeMaj := grantedMin.Load(), grantedMaj.Load()
	if beforeMin+beforeMaj >= n {
		t.Fatalf("the whole limit was granted before the partition (%d on the minority side, %d on the majority side): nothing left to test", beforeMin, beforeMaj)
	}

	// The minority's owner stops answering once it has failed to renew for
	// most of the lease's TTL.
	var steppedDown time.Time
	ledgertest.Eventually(t, 15*time.Second, "member-a to stop owning on the minority side", func() bool {
		st, err := cMin.Member(ctx, "member-a")
		if err != nil {
			return false
		}
		for _, ps := range st.Partitions {
			if ps.Partition == p && ps.State == "owner" {
				return false
			}
		}
		steppedDown = time.Now()
		return true
	})
	// The majority's standby takes over once the lease has lapsed and the
	// two remaining nodes have elected leaders for the stream (and the
	// lease bucket, if its leader was cut off too).
	ledgertest.Eventually(t, 45*time.Second, "member-b to take over on the majority side", func() bool {
		st, _ := partitionState(ctx, cMaj, "member-b", p)
		return st == "owner"
	})
	tookOver := time.Now()
	newLeader := c.WaitStreamLeader(t, events.StreamName, 30*time.Second)
	t.Logf("cut off node %d at %s (Isolate took %s); member-a stopped owning %s after the cut; member-b owned partition %d %s after it; node %d leads the stream now",
		iso, isolating.Format(time.StampMilli), isolated.Sub(isolating).Round(time.Millisecond), steppedDown.Sub(isolating).Round(time.Millisecond), p,
		tookOver.Sub(isolating).Round(time.Millisecond), newLeader)
	// The majority goes on deciding; the minority's clients keep asking
	// and keep being told unavailable.
	minUnavail := unavailMin.Load()
	ledgertest.Eventually(t, 30*time.Second, "the majority to grant again and the minority to be refused 20 more times", func() bool {
		return (grantedMaj.Load() >= beforeMaj+20 || granted.Load() == n) && unavailMin.Load() >= minUnavail+20
	})
	failed()
	healing := time.Now()
	c.Heal(iso)
	t.Logf("healed node %d at %s in %s", iso, healing.Format(time.StampMilli), time.Since(healing).Round(time.Millisecond))
	select {
	case <-reserved:
	case <-time.After(60 * time.Second):
		t.Fatal("the reservers did not all reach a denial within 60s of healing")
	}
	failed()

	// Sort the attempts by side and phase. An attempt sent before Isolate
	// began may have been appended before the cut, its answer coming after
	// it: it counts as "before the cut", whenever answered. One sent after
	// Isolate returned and answered before Heal began was entirely within
	// the partition: on the minority side it cannot have been appended, so
	// it must not be a grant (an "exists" for a retried id whose first
	// attempt was appended before the cut is not a new grant, and is allowed
	// until member-a steps down). Attempts sent while Isolate ran, or
	// before Heal and answered after it, are counted apart.
	type tally struct{ attempts, created, exists, unavailable, conflict, denied int }
	var pre, during, straddle, post [2]tally // [0] majority, [1] minority
	ids := map[string]string{}
	var violations []string
	for _, log := range logs {
		for _, at := range log {
			side := 0
			if at.minority {
				side = 1
			}
			var tl *tally
			switch {
			case at.sent.Before(isolating):
				tl = &pre[side]
			case !at.sent.Before(isolated) && at.done.Before(healing):
				tl = &during[side]
			case !at.sent.Before(healing):
				tl = &post[side]
			default:
				tl = &straddle[side]
			}
			tl.attempts++
			switch {
			case at.err == nil && at.outcome == "created":
				tl.created++
			case at.err == nil:
				tl.exists++
			case errors.Is(at.err, events.ErrUnavailable):
				tl.unavailable++
			case errors.Is(at.err, events.ErrConflict):
				tl.conflict++
			case errors.Is(at.err, events.ErrQuotaExceeded):
				tl.denied++
			}
			if at.err == nil {
				if prev, ok := ids[at.id]; ok {
					violations = append(violations, fmt.Sprintf("reservation %s granted twice (%s, then %s)", at.id, prev, at.outcome))
				}
				ids[at.id] = at.outcome
			}
			if tl == &during[1] {
				switch {
				case at.err == nil && at.outcome == "created":
					violations = append(violations, fmt.Sprintf("minority client granted %s, sent %s after the cut", at.id, at.sent.Sub(isolated)))
				case at.err == nil && !at.sent.Before(steppedDown):
					violations = append(violations, fmt.Sprintf("minority client answered %s (%s) after member-a stepped down", at.id, at.outcome))
				case at.err != nil && !errors.Is(at.err, events.ErrUnavailable) && !at.sent.Before(steppedDown):
					violations = append(violations, fmt.Sprintf("minority client got %v for %s after member-a stepped down, want unavailable", at.err, at.id))
				}
			}
		}
	}
	for i, side := range []string{"majority", "minority"} {
		t.Logf("%s side: before the cut %+v; during the partition %+v; after healing %+v; across Isolate or Heal %+v", side, pre[i], during[i], post[i], straddle[i])
	}
	for _, v := range violations {
		t.Error(v)
	}
	created := 0
	for _, o := range ids {
		if o == "created" {
			created++
		}
	}
	if len(ids) != n {
		t.Fatalf("%d reservations granted (%d answered created, the others exists on a retry), want exactly the limit %d", len(ids), created, n)
	}
	if during[1].attempts == 0 || during[1].unavailable == 0 {
		t.Fatalf("no minority-side attempt fell within the partition: %+v", during[1])
	}
	if during[0].created == 0 && pre[0].created+pre[1].created < n {
		t.Fatalf("the majority granted nothing during the partition: %+v", during[0])
	}

	// After healing, member-a (the preferred owner of all) takes every
	// partition back from member-b, once caught up: a barrier and a claim
	// each, after which the stream grows no more.
	var owned map[int][]string
	ledgertest.Eventually(t, 60*time.Second, "member-a to own every partition again after healing", func() bool {
		got, ok := owners(ctx, cMaj, "member-a", "member-b")
		owned = got
		for q := range events.Partitions {
			if !ok || !slices.Equal(got[q], []string{"member-a"}) {
				return false
			}
		}
		return true
	})

	// Convergence: the owner answers the same through either side, and both
	// processes fold the stream to its end...
	last := streamLastSeq(t, ctx, jsAll)
	for side, cl := range map[string]*client.Client{"majority": cMaj, "minority": cMin} {
		var r *api.CheckReply
		ledgertest.Eventually(t, 30*time.Second, "a check through the "+side+" node", func() bool {
			var err error
			r, err = cl.Check(ctx, api.CheckRequest{Tenant: tenant, Dims: dims, Request: events.Amounts{Tokens: 1}, AfterSeq: last})
			return err == nil
		})
		if r.Allowed || len(r.Limits) != 1 || r.Limits[0].Reserved != n || r.AppliedSeq < last {
			t.Fatalf("check through the %s node: %+v, want denied with %d reserved at sequence %d or later", side, r, n, last)
		}
	}
	for _, name := range []string{"member-a", "member-b"} {
		var st *api.MemberStatus
		func() {
			defer func() {
				if t.Failed() {
					t.Logf("%s's last status: %+v (the stream's last sequence %d)", name, st, last)
				}
			}()
			ledgertest.Eventually(t, time.Minute, name+" to fold the stream to its end", func() bool {
				got, err := cMaj.Member(ctx, name)
				if err == nil {
					st = got
				}
				return err == nil && got.Ready && got.AppliedSeq == last
			})
		}()
	}
	t.Logf("after healing: %s owns partition %d; both members applied sequence %d", owned[p][0], p, last)
	// Each claim on this replicated stream was made after a barrier, whose
	// acknowledgement needs the quorum: the last one follows the partition.
	if s, err := jsAll.Stream(ctx, events.StreamName); err != nil {
		t.Fatal(err)
	} else if m, err := ledger.ReadFromLeader(jsAll, s).GetLastMsgForSubject(ctx, events.BarrierSubject(p)); err != nil {
		t.Errorf("no barrier of partition %d in the stream: %v", p, err)
	} else {
		t.Logf("the last barrier of partition %d is at sequence %d", p, m.Sequence)
	}

	// ... into the same projection: stopped, their stores have the same
	// digest at the same applied sequence. The standby first: stopped
	// second, it would claim what the owner gave up, after a barrier.
	stopMember(t, b, "member-b")
	stopMember(t, a, "member-a")
	if again := streamLastSeq(t, ctx, jsAll); again != last {
		t.Fatalf("the stream grew from %d to %d while the members stopped", last, again)
	}
	digests := make([]*replay.Digest, 2)
	for i, dir := range []string{dirA, dirB} {
		store, err := projections.OpenStore(filepath.Join(dir, "projection"), projections.StoreOptions{})
		if err != nil {
			t.Fatal(err)
		}
		digests[i], err = replay.DigestStore(store)
		store.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	if digests[0].Applied != last || digests[1].Applied != last || digests[0].Sum != digests[1].Sum {
		for _, k := range slices.Sorted(maps.Keys(digests[0].Kinds)) {
			if digests[0].Kinds[k] != digests[1].Kinds[k] {
				t.Logf("%s entries differ: member-a %d, member-b %d", k, digests[0].Entries[k], digests[1].Entries[k])
			}
		}
		t.Fatalf("projections differ: member-a %s, member-b %s, stream at %d", digests[0], digests[1], last)
	}
	t.Logf("both projections: %s", digests[0])
}
