package ledgertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ledgerworks/ledger/api"
	"github.com/ledgerworks/ledger/events"
)

// TestMain fails the package if goroutines outlive its tests: every
// server, proxy and connection must be gone after the cleanups ran.
func TestMain(m *testing.M) {
	before := runtime.NumGoroutine()
	code := m.Run()
	if code == 0 {
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				fmt.Fprintf(os.Stderr, "%d goroutines left behind (%d before the tests):\n%s\n",
					runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
				code = 1
				break
			}
			time.Sleep(10 * time.Millisecond) // polling interval of a condition with a deadline
		}
	}
	os.Exit(code)
}

// electionWithin bounds a wait that includes a raft election: JetStream's
// election timeout is 4 to 9 s, this leaves room for a second round.
const electionWithin = 20 * time.Second

// createR3 creates an R3 file stream over prefix.> and waits until it has
// a leader and both followers are current.
func createR3(t *testing.T, c *Cluster, js jetstream.JetStream, name, prefix string) jetstream.Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:     name,
		Subjects: []string{prefix + ".>"},
		Replicas: 3,
		Storage:  jetstream.FileStorage,
	})
	if err != nil {
		t.Fatalf("create stream %s: %v", name, err)
	}
	c.WaitStreamLeader(t, name, 10*time.Second)
	Eventually(t, 10*time.Second, "stream "+name+" with a leader and 2 current replicas", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		info, err := st.Info(ctx)
		if err != nil || info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != 2 {
			return false
		}
		for _, r := range info.Cluster.Replicas {
			if !r.Current || r.Offline {
				return false
			}
		}
		return true
	})
	return st
}

// publish publishes one message with id as its Nats-Msg-Id (so a retry of
// a write that did land is dropped), waiting at most within for the ack.
func publish(js jetstream.JetStream, subject, id string, within time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	_, err := js.Publish(ctx, subject, []byte(id), jetstream.WithMsgID(id))
	return err
}

// publishUntilAccepted retries one write until it is acknowledged and
// returns how many attempts it took.
func publishUntilAccepted(t *testing.T, js jetstream.JetStream, subject, id string, within time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(within)
	for attempt := 1; ; attempt++ {
		err := publish(js, subject, id, time.Second)
		if err == nil {
			return attempt
		}
		if time.Now().After(deadline) {
			t.Fatalf("write %s not accepted within %s (%d attempts): %v", id, within, attempt, err)
		}
		time.Sleep(10 * time.Millisecond) // a failed attempt can return at once (no responders)
	}
}

// waitLastSeq waits until node i's own copy of stream holds exactly seq
// messages, 1..seq.
func waitLastSeq(t *testing.T, c *Cluster, i int, stream string, seq uint64) {
	t.Helper()
	var st server.StreamState
	var err error
	Eventually(t, 10*time.Second, fmt.Sprintf("node %d's %s at last seq %d", i, stream, seq), func() bool {
		st, err = c.StreamState(i, stream)
		return err == nil && st.LastSeq == seq && st.Msgs == seq
	})
}

func TestClusterKillLeaderAndRestart(t *testing.T) {
	t.Parallel()
	started := time.Now()
	c := StartCluster(t, 3)
	t.Logf("cluster ready in %s", time.Since(started).Round(time.Millisecond))
	js := JetStream(t, Connect(t, c.URLs()))
	st := createR3(t, c, js, "KILL", "kill")

	const before, after = 10, 5
	for i := range before {
		if err := publish(js, "kill.x", "before-"+strconv.Itoa(i), 2*time.Second); err != nil {
			t.Fatalf("write before the kill: %v", err)
		}
	}
	leader := c.StreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, "KILL")
	if leader < 0 {
		t.Fatal("no stream leader")
	}

	killed := time.Now()
	c.Kill(leader)
	killTook := time.Since(killed)
	attempts := publishUntilAccepted(t, js, "kill.x", "after-0", electionWithin)
	gap := time.Since(killed)
	newLeader := c.WaitStreamLeader(t, "KILL", electionWithin)
	if newLeader == leader {
		t.Fatalf("node %d still leads after it was killed", leader)
	}
	t.Logf("killed leader n%d (Kill took %s); writes resumed on n%d %s after the kill, %d attempts",
		leader, killTook.Round(time.Millisecond), newLeader, gap.Round(time.Millisecond), attempts)

	for i := 1; i < after; i++ {
		if err := publish(js, "kill.x", "after-"+strconv.Itoa(i), 2*time.Second); err != nil {
			t.Fatalf("write on the new leader: %v", err)
		}
	}
	const last = before + after

	restarted := time.Now()
	c.Restart(leader)
	t.Logf("restart of n%d until healthy: %s", leader, time.Since(restarted).Round(time.Millisecond))
	waitLastSeq(t, c, leader, "KILL", last)
	for i := range c.N() {
		waitLastSeq(t, c, i, "KILL", last)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.LastSeq != last || info.State.Msgs != last {
		t.Fatalf("stream info: last seq %d, %d msgs, want %d", info.State.LastSeq, info.State.Msgs, last)
	}
}

func TestClusterPartitionMappings(t *testing.T) {
	t.Parallel()
	c := StartCluster(t, 3)

	// One responder, on node 0, answers with the subject it was reached on:
	// requests sent to the other nodes cross a route after their mapping.
	resp := Connect(t, c.URL(0))
	if _, err := resp.Subscribe(api.PartitionPrefix+".>", func(m *nats.Msg) { _ = m.Respond([]byte(m.Subject)) }); err != nil {
		t.Fatal(err)
	}
	if err := resp.Flush(); err != nil {
		t.Fatal(err)
	}

	cases := []struct{ sent, want string }{
		{"ledger.v1.check.acme", "ledger.v1.p.15.check.acme"},
		{"ledger.v1.check.globex", "ledger.v1.p.14.check.globex"},
		{"ledger.v1.check.initech", "ledger.v1.p.1.check.initech"},
		{"ledger.v1.quota.set.acme", "ledger.v1.p.15.quota.set.acme"},
	}
	// The expectations agree with the partition function of the stream.
	for tenant, p := range map[string]int{"acme": 15, "globex": 14, "initech": 1} {
		if got := events.Partition(tenant); got != p {
			t.Fatalf("events.Partition(%q) = %d, the test expects %d", tenant, got, p)
		}
	}
	if got := api.TenantSubject(api.SubjectCheck, "acme"); got != cases[0].sent {
		t.Fatalf("api.TenantSubject = %q, want %q", got, cases[0].sent)
	}

	for i := range c.N() {
		nc := Connect(t, c.URL(i))
		for _, tc := range cases {
			var got string
			var err error
			// Until node i has learned of the responder's interest across
			// the route, a request finds no responders.
			Eventually(t, 5*time.Second, "a reply through node "+strconv.Itoa(i), func() bool {
				var m *nats.Msg
				m, err = nc.Request(tc.sent, nil, time.Second)
				if errors.Is(err, nats.ErrNoResponders) {
					return false
				}
				if err == nil {
					got = string(m.Data)
				}
				return true
			})
			if err != nil {
				t.Fatalf("node %d: request %s: %v", i, tc.sent, err)
			}
			if got != tc.want {
				t.Errorf("node %d maps %s to %s, want %s", i, tc.sent, got, tc.want)
			}
		}
	}
}

func TestClusterIsolateAndHeal(t *testing.T) {
	t.Parallel()
	c := StartCluster(t, 3)
	js := JetStream(t, Connect(t, c.URLs()))
	createR3(t, c, js, "PART", "part")
	const before = 5
	for i := range before {
		if err := publish(js, "part.x", "before-"+strconv.Itoa(i), 2*time.Second); err != nil {
			t.Fatalf("write before the partition: %v", err)
		}
	}

	// Cut off the stream's leader: the hardest case, a node that believes
	// it leads but has no quorum.
	iso := c.StreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, "PART")
	if iso < 0 {
		t.Fatal("no stream leader")
	}
	maj := (iso + 1) % c.N()
	ncMinority := Connect(t, c.URL(iso))
	jsMinority := JetStream(t, ncMinority)
	jsMajority := JetStream(t, Connect(t, c.URL(maj)))
	if err := ncMinority.Flush(); err != nil {
		t.Fatal(err)
	}

	isolated := time.Now()
	c.Isolate(iso)
	t.Logf("isolated n%d (the stream leader) in %s", iso, time.Since(isolated).Round(time.Millisecond))

	err := publish(jsMinority, "part.x", "minority", 2*time.Second)
	if err == nil {
		t.Fatalf("a write through isolated node %d was acknowledged", iso)
	}
	t.Logf("write through the minority n%d: %v", iso, err)
	if !ncMinority.IsConnected() || ncMinority.ConnectedUrl() != c.URL(iso) {
		t.Fatalf("the minority client lost its connection to node %d", iso)
	}

	attempts := publishUntilAccepted(t, jsMajority, "part.x", "majority-0", electionWithin)
	gap := time.Since(isolated)
	newLeader := c.WaitStreamLeader(t, "PART", electionWithin)
	if newLeader == iso {
		t.Fatalf("isolated node %d counted as leader", iso)
	}
	t.Logf("writes through the majority resumed on leader n%d %s after the partition, %d attempts",
		newLeader, gap.Round(time.Millisecond), attempts)
	const after = 3
	for i := 1; i < after; i++ {
		if err := publish(jsMajority, "part.x", "majority-"+strconv.Itoa(i), 2*time.Second); err != nil {
			t.Fatalf("write through the majority: %v", err)
		}
	}
	const last = before + after

	// Still cut off, seconds later: no route came back around the proxies,
	// and the isolated node has not seen the majority's writes.
	if rz, err := c.Server(iso).Routez(nil); err != nil || rz.NumRoutes != 0 {
		t.Fatalf("isolated node %d has routes: %+v, %v", iso, rz, err)
	}
	if st, err := c.StreamState(iso, "PART"); err != nil || st.LastSeq != before {
		t.Fatalf("isolated node %d: %+v, %v; want last seq %d", iso, st, err, before)
	}

	healed := time.Now()
	c.Heal(iso)
	t.Logf("heal of n%d until healthy: %s", iso, time.Since(healed).Round(time.Millisecond))
	// The minority's write was never committed: every node, the healed one
	// too, holds exactly the majority's writes.
	for i := range c.N() {
		waitLastSeq(t, c, i, "PART", last)
	}
	if err := publish(jsMinority, "part.x", "after-heal", 5*time.Second); err != nil {
		t.Fatalf("write through the healed node %d: %v", iso, err)
	}
}
