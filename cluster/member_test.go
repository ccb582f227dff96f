package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ledgerworks/ledger/cluster"
	"github.com/ledgerworks/ledger/internal/ledgertest"
)

const ttl = 400 * time.Millisecond

// recorder is a Handler that records what it is told and can refuse to
// catch up.
type recorder struct {
	mu      sync.Mutex
	owned   map[int]uint64
	behind  bool
	history []string
}

func newRecorder() *recorder { return &recorder{owned: map[int]uint64{}} }

func (r *recorder) CatchUp(context.Context, int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.behind {
		return errors.New("behind")
	}
	return nil
}

func (r *recorder) Own(p int, epoch uint64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.owned[p] = epoch
	r.history = append(r.history, fmt.Sprintf("own %d", p))
	return nil
}

func (r *recorder) Disown(p int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.owned, p)
	r.history = append(r.history, fmt.Sprintf("disown %d", p))
}

func (r *recorder) epoch(p int) (uint64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.owned[p]
	return e, ok
}

func join(t *testing.T, url, name string, a cluster.Assignment, h cluster.Handler) (*cluster.Member, *nats.Conn) {
	t.Helper()
	nc := ledgertest.Connect(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := cluster.Join(ctx, ledgertest.JetStream(t, nc), cluster.Options{Name: name, Assignment: a, LeaseTTL: ttl}, h)
	if err != nil {
		t.Fatal(err)
	}
	return m, nc
}

func leave(m *cluster.Member) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m.Leave(ctx)
}

// The preferred owner takes a free partition when it joins; the standby
// waits. When the owner loses its connection it stops answering by itself
// (it cannot renew), and the standby takes the partition once the lease has
// lapsed, with a larger epoch.
func TestStandbyTakesOverALapsedLease(t *testing.T) {
	srv := ledgertest.StartServer(t, "")
	ha, hb := newRecorder(), newRecorder()
	a, nca := join(t, srv.URL(), "a", cluster.Assignment{Owns: []int{0}}, ha)
	b, _ := join(t, srv.URL(), "b", cluster.Assignment{Standby: []int{0}}, hb)
	defer leave(b)
	first, ok := ha.epoch(0)
	if !ok || !a.Owns(0) {
		t.Fatal("the preferred owner does not own its partition after joining")
	}
	ledgertest.Eventually(t, 5*time.Second, "b to see a as the owner", func() bool { return b.Partitions()[0].Owner == "a" })
	if b.Owns(0) {
		t.Fatal("the standby owns a partition whose owner is alive")
	}
	nca.Close() // a can no longer renew
	ledgertest.Eventually(t, 10*time.Second, "a to give up partition 0", func() bool { _, ok := ha.epoch(0); return !ok })
	ledgertest.Eventually(t, 10*time.Second, "b to own partition 0", func() bool { return b.Owns(0) })
	second, _ := hb.epoch(0)
	if second <= first {
		t.Fatalf("the new owner's epoch %d is not above the old one's %d", second, first)
	}
	a.Leave(context.Background())
}

// A member that leaves gives its leases up, and its standby takes over
// without waiting for them to lapse.
func TestLeaveHandsOver(t *testing.T) {
	srv := ledgertest.StartServer(t, "")
	ha, hb := newRecorder(), newRecorder()
	a, _ := join(t, srv.URL(), "a", cluster.Assignment{Owns: []int{1, 2}}, ha)
	b, _ := join(t, srv.URL(), "b", cluster.Assignment{Standby: []int{1, 2}}, hb)
	defer leave(b)
	leave(a)
	if len(ha.owned) != 0 {
		t.Fatalf("a still owns %v after leaving", ha.owned)
	}
	ledgertest.Eventually(t, 10*time.Second, "b to own both partitions", func() bool { return b.Owns(1) && b.Owns(2) })
}

// A member restarted under the same name takes its leases back at once
// (before they would lapse): they were its own.
func TestRestartedMemberTakesItsLeasesBack(t *testing.T) {
	srv := ledgertest.StartServer(t, "")
	h1 := newRecorder()
	first, nc1 := join(t, srv.URL(), "a", cluster.Assignment{Owns: []int{3}}, h1)
	e1, _ := h1.epoch(3)
	nc1.Close() // the process dies: no Leave
	h2 := newRecorder()
	second, _ := join(t, srv.URL(), "a", cluster.Assignment{Owns: []int{3}}, h2)
	defer leave(second)
	e2, ok := h2.epoch(3)
	if !ok || e2 <= e1 {
		t.Fatalf("restarted member: owns %t with epoch %d, want it owned at join with an epoch above %d", ok, e2, e1)
	}
	first.Leave(context.Background())
}

// A member whose projection has not caught up claims nothing, even a free
// partition it prefers; it claims once caught up.
func TestNoClaimBeforeCatchingUp(t *testing.T) {
	srv := ledgertest.StartServer(t, "")
	h := newRecorder()
	h.behind = true
	m, _ := join(t, srv.URL(), "a", cluster.Assignment{Owns: []int{4, 5}}, h)
	defer leave(m)
	if m.Owns(4) || m.Owns(5) {
		t.Fatal("claimed a partition before catching up")
	}
	h.mu.Lock()
	h.behind = false
	h.mu.Unlock()
	ledgertest.Eventually(t, 10*time.Second, "the claims once caught up", func() bool { return m.Owns(4) && m.Owns(5) })
}

// Three members racing for every partition at once: each partition ends up
// with exactly one owner.
func TestOneOwnerPerPartition(t *testing.T) {
	srv := ledgertest.StartServer(t, "")
	var members []*cluster.Member
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc, err := nats.Connect(srv.URL())
			if err != nil {
				t.Error(err)
				return
			}
			t.Cleanup(nc.Close)
			js, _ := jetstream.New(nc)
			m, err := cluster.Join(context.Background(), js, cluster.Options{Name: fmt.Sprintf("m%d", i), Assignment: cluster.Assignment{Owns: cluster.All()}, LeaseTTL: ttl}, newRecorder())
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			members = append(members, m)
			mu.Unlock()
		}()
	}
	wg.Wait()
	defer func() {
		for _, m := range members {
			leave(m)
		}
	}()
	if len(members) != 3 {
		t.Fatal("not every member joined")
	}
	// Look once per renewal interval, for a few of them: ownership stays
	// single while the members renew and the others keep trying to claim.
	every := time.NewTicker(ttl / 4)
	defer every.Stop()
	for round := 0; round < 5; round++ {
		for p := range 16 {
			owners := 0
			for _, m := range members {
				if m.Owns(p) {
					owners++
				}
			}
			if owners != 1 {
				t.Fatalf("round %d: partition %d has %d owners", round, p, owners)
			}
		}
		<-every.C
	}
}

// A standby that took a partition over gives it back to the partition's
// preferred owner once that owner is back and caught up, so a failover
// followed by a restart ends with the assignment as configured.
func TestPreferredOwnerGetsItsPartitionBack(t *testing.T) {
	srv := ledgertest.StartServer(t, "")
	hb := newRecorder()
	b, _ := join(t, srv.URL(), "b", cluster.Assignment{Owns: []int{7}, Standby: []int{6}}, hb)
	defer leave(b)
	ledgertest.Eventually(t, 10*time.Second, "the standby to take the free partition", func() bool { return b.Owns(6) })
	ha := newRecorder()
	a, _ := join(t, srv.URL(), "a", cluster.Assignment{Owns: []int{6}, Standby: []int{7}}, ha)
	defer leave(a)
	ledgertest.Eventually(t, 10*time.Second, "the preferred owner to get partition 6 back", func() bool { return a.Owns(6) && !b.Owns(6) })
	if _, ok := hb.epoch(6); ok {
		t.Fatal("the standby still serves the partition it gave back")
	}
	// The other way round nothing moves: b prefers 7 and holds it.
	if !b.Owns(7) || a.Owns(7) {
		t.Fatalf("partition 7 moved: b owns %t, a owns %t", b.Owns(7), a.Owns(7))
	}
}
