package ledger_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ledgerworks/ledger/api"
	"github.com/ledgerworks/ledger/client"
	"github.com/ledgerworks/ledger/cluster"
	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/internal/ledgertest"
	"github.com/ledgerworks/ledger/ledger"
	"github.com/ledgerworks/ledger/projections"
)

// Two ledgers own disjoint halves of the partitions and a standalone
// projector folds partition 0 only (the setup in which, before owners, half
// of the checks came back "allowed, no limits" from the projector). After
// usage is recorded for tenants spread over every partition, thousands of
// concurrent checks all get the right answer, each from the owner of its
// tenant's partition.
func TestRequestsReachOnlyTheOwner(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	srv := ledgertest.StartServer(t, "")
	low, _ := cluster.ParsePartitions("0-7")
	high, _ := cluster.ParsePartitions("8-15")
	a := ledgertest.StartLedger(t, ledger.Config{NATSURL: srv.URL(), Member: "low", Assignment: cluster.Assignment{Owns: low}})
	b := ledgertest.StartLedger(t, ledger.Config{NATSURL: srv.URL(), Member: "high", Assignment: cluster.Assignment{Owns: high}})
	pctx, stopProjector := context.WithCancel(ctx)
	projected := make(chan error, 1)
	go func() {
		projected <- ledger.RunProjector(pctx, ledger.ProjectorConfig{NATSURL: srv.URL(), DataDir: t.TempDir(), Member: "p0", Projector: projections.ProjectorOptions{Partitions: []int{0}}})
	}()
	t.Cleanup(func() {
		stopProjector()
		if err := <-projected; err != nil {
			t.Errorf("projector: %v", err)
		}
	})

	nc := ledgertest.Connect(t, srv.URL())
	c, _ := client.New(nc)
	// 64 tenants, every partition among them; tenant i has used 10*i+1 of
	// a limit of 1000.
	tenants := make([]string, 64)
	seen := map[int]bool{}
	for i := range tenants {
		tenants[i] = fmt.Sprintf("team-%d", i)
		seen[events.Partition(tenants[i])] = true
	}
	if len(seen) != events.Partitions {
		t.Fatalf("the tenants cover %d partitions, want all %d", len(seen), events.Partitions)
	}
	now := time.Now()
	wrote := make([]uint64, len(tenants)) // each tenant's usage, at this sequence
	for i, tenant := range tenants {
		if _, err := c.SetQuota(ctx, tenant, events.Quota{ID: "cap", Limits: []events.Limit{dayLimit(events.MetricTokens, 1000)}}); err != nil {
			t.Fatal(err)
		}
		r, err := c.RecordUsage(ctx, usage("u-"+tenant, tenant, now, int64(10*i+1), 0))
		if err != nil {
			t.Fatal(err)
		}
		wrote[i] = r.Seq
	}
	before := map[string]map[int]int{"low": a.Service().Requests(), "high": b.Service().Requests()}

	const checks = 4000
	var wg sync.WaitGroup
	errs := make(chan error, checks)
	for w := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < checks; i += 32 {
				k := i % len(tenants)
				tenant, want, after := tenants[k], int64(10*k+1), wrote[k]
				r, err := c.Check(ctx, api.CheckRequest{Tenant: tenant, AfterSeq: after})
				switch {
				case err != nil:
					errs <- fmt.Errorf("check %s: %w", tenant, err)
				case len(r.Limits) != 1 || r.Limits[0].Used != want || r.AppliedSeq < after:
					errs <- fmt.Errorf("check %s: %+v, want %d used of the quota cap at sequence %d or later", tenant, r, want, after)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	wrong := 0
	for err := range errs {
		if wrong++; wrong <= 5 {
			t.Error(err)
		}
	}
	if wrong > 0 {
		t.Fatalf("%d of %d checks answered wrong", wrong, checks)
	}

	// Each check was taken by the owner of its tenant's partition: the
	// requests each owner took since are exactly its tenants' checks.
	want := map[int]int{}
	for i := range checks {
		want[events.Partition(tenants[i%len(tenants)])]++
	}
	for name, l := range map[string]*ledger.Ledger{"low": a, "high": b} {
		got := l.Service().Requests()
		for p := range events.Partitions {
			owner := "high"
			if p < 8 {
				owner = "low"
			}
			if name != owner {
				if _, ok := got[p]; ok {
					t.Errorf("%s serves partition %d, owned by %s", name, p, owner)
				}
				continue
			}
			if n := got[p] - before[name][p]; n != want[p] {
				t.Errorf("%s took %d requests for partition %d, want its %d checks", name, n, p, want[p])
			}
		}
	}

	// A read after a sequence of another partition's event does not wait
	// for it: an owner of some partitions never folds the others' events.
	latest := slices.Max(wrote)
	for k, tenant := range tenants {
		if wrote[k] == latest {
			continue
		}
		if _, err := c.Check(ctx, api.CheckRequest{Tenant: tenant, AfterSeq: latest}); err != nil {
			t.Fatalf("check %s after sequence %d of another tenant: %v", tenant, latest, err)
		}
	}
}
