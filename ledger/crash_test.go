package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ledgerworks/ledger/client"
	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/internal/ledgertest"
	"github.com/ledgerworks/ledger/ledger"
	"github.com/ledgerworks/ledger/projections"
)

// startProjectorProcess runs a standalone projector in a child process.
func startProjectorProcess(t *testing.T, url, dir string) *exec.Cmd {
	t.Helper()
	return startChild(t, "projector", envURL+"="+url, envData+"="+dir, envMember+"="+crashProjector)
}

// A projector process killed with SIGKILL at three random points of a
// 200,000-event ingest, and restarted each time, ends with exact totals:
// its applied sequence is committed in the same Pebble batch as the counters
// it covers, and it resumes from there, not from a consumer ack floor.
// crashProjector names the projector process of the crash tests.
const crashProjector = "crash-projector"

func TestProjectorKilledDuringIngestEndsExact(t *testing.T) {
	const total, accounts = 200_000, 100
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	srv := ledgertest.StartServer(t, "")
	nc := ledgertest.Connect(t, srv.URL())
	js := ledgertest.JetStream(t, nc)
	if _, err := ledger.EnsureStream(ctx, js, ledger.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 7))

	want := make(map[string]int64, accounts)
	evs := make([]events.Event, total)
	now := time.Now()
	for i := range evs {
		tenant := fmt.Sprintf("t%03d", rng.IntN(accounts))
		n := 1 + rng.Int64N(500)
		evs[i] = events.New(fmt.Sprintf("e%06d", i), tenant, now, events.Dimensions{"model": "m"}, &events.UsageRecorded{Amounts: events.Amounts{Tokens: n, Requests: 1}})
		want[tenant] += n
	}

	var wg sync.WaitGroup
	var ingestErr error
	var recorded atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		pr, err := client.NewProducer(nc, client.ProducerOptions{MaxBatch: 40})
		if err != nil {
			ingestErr = err
			return
		}
		for i, ev := range evs {
			if err := pr.Record(ctx, ev); err != nil {
				ingestErr = err
				return
			}
			recorded.Add(1)
			if i%20_000 == 0 {
				if err := pr.Flush(ctx); err != nil {
					ingestErr = err
					return
				}
			}
		}
		ingestErr = pr.Close(ctx)
	}()

	dir := t.TempDir()
	c, _ := client.New(nc, client.WithTimeout(2*time.Second))
	applied := func() uint64 {
		st, err := c.Member(ctx, crashProjector)
		if err != nil {
			return 0
		}
		return st.AppliedSeq
	}
	// Kill points spread over the ingest: once a random share of the events
	// is recorded, kill when the projector passes a random point of what is
	// in the stream by then.
	shares := []float64{0.05 + 0.2*rng.Float64(), 0.35 + 0.2*rng.Float64(), 0.65 + 0.2*rng.Float64()}
	cmd := startProjectorProcess(t, srv.URL(), dir)
	for i, share := range shares {
		ledgertest.Eventually(t, time.Minute, "the producer to progress", func() bool { return recorded.Load() >= int64(share*total) })
		inStream, err := ledger.StreamLastSeq(ctx, js, events.StreamName)
		if err != nil {
			t.Fatal(err)
		}
		// A point ahead of the projector, not far ahead: the kill lands
		// while it folds, wherever the producer is.
		now := applied()
		at := now + 1 + rng.Uint64N(max(inStream-now, 4)/4)
		ledgertest.Eventually(t, 3*time.Minute, fmt.Sprintf("projector to pass sequence %d", at), func() bool { return applied() >= at })
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		err = cmd.Wait()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("kill %d: projector did not die of SIGKILL: %v", i+1, err)
		}
		t.Logf("kill %d at applied sequence >= %d, %d events recorded", i+1, at, recorded.Load())
		cmd = startProjectorProcess(t, srv.URL(), dir)
	}
	wg.Wait()
	if ingestErr != nil {
		t.Fatal(ingestErr)
	}
	last, err := ledger.StreamLastSeq(ctx, js, events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	ledgertest.Eventually(t, 5*time.Minute, fmt.Sprintf("projector to reach the stream's last sequence %d", last), func() bool { return applied() >= last })
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("projector did not stop cleanly on SIGTERM: %v", err)
	}
	// The projector answers no tenant's requests: read its store.
	store, err := projections.OpenStore(dir, projections.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if got, err := store.Applied(); err != nil || got != last {
		t.Fatalf("the store's applied sequence is %d (%v), want %d", got, err, last)
	}
	for tenant, n := range want {
		tot, err := store.Totals(tenant)
		if err != nil {
			t.Fatal(err)
		}
		if got := tot[events.MetricTokens]; got != n {
			t.Errorf("%s: %d tokens, want %d", tenant, got, n)
		}
	}
}
