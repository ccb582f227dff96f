package loadtest

import (
	"context"
	"fmt"
	"runtime"
	"time"
)

// scaleResult holds the figures of one phase of the scale scenario.
type scaleResult struct {
	accounts       int
	ingest         rate
	checkP50       float64 // sequential checks right after the phase's ingest
	pop            *population
	peakMB, heapMB float64
}

// scale: check p50 and ingest rate at ScaleAccounts accounts against the same
// figures at Accounts accounts; memory: the peak RSS of the process while
// the ledger takes the ScaleAccounts phase, beside the same figure for the
// Accounts phase. Both phases run on the same ledger, the small one first,
// and share one run when both scenarios are asked for.
func (e *env) scale(ctx context.Context, which string) error {
	if e.scaled == nil {
		small, err := e.scalePhase(ctx, "sa", e.cfg.Accounts, randomAccounts(e.cfg.Accounts))
		if err != nil {
			return err
		}
		large, err := e.scalePhase(ctx, "sb", e.cfg.ScaleAccounts, everyAccount(e.cfg.ScaleAccounts))
		if err != nil {
			return err
		}
		e.scaled = &[2]scaleResult{small, large}
	}
	small, large := e.scaled[0], e.scaled[1]
	switch which {
	case "scale":
		// Each phase's own checks ran seconds apart, and the machine's
		// drift between them moved this ratio by ±0.15 from run to run.
		// The figure is taken with both populations' checks in alternating
		// blocks (see interleaved), on the ledger holding both. The small
		// population's checks are its phase's: its limits are counter-cache
		// hits, as they were there. The large one's are accounts its phase
		// did not check (another random stream, none repeated), so that its
		// limits are not in the caches, as they were not there.
		calls := seqWarmup + seqMax/4
		lat, err := interleaved(ctx, seqWarmup, seqMax/4, e.cfg.Duration,
			e.checkCalls(ctx, checkRequests(small.pop, 4096, 0)), e.checkCalls(ctx, checkRequests(large.pop, calls, 1)))
		if err != nil {
			return fmt.Errorf("check: %w", err)
		}
		e.notef("scale: checks of both populations in alternating blocks of %d: p50 %.0f µs (%d accounts) and %.0f µs (%d accounts) over %d calls each; each phase's own, just after its ingest: %.0f and %.0f µs",
			interleaveBlock, lat[0].quantile(0.5), small.accounts, lat[1].quantile(0.5), large.accounts, len(lat[1]), small.checkP50, large.checkP50)
		e.report("scale", "check_p50_us", lat[1].quantile(0.5), lat[0].quantile(0.5), true)
		e.report("scale", "ingest_events_per_s", large.ingest.rate(), small.ingest.rate(), false)
	case "memory":
		e.notef("memory: peak RSS of the whole bench process (embedded server, ledger, load generators) during each phase; Go heap after the phase %.0f MiB (%d accounts), %.0f MiB (%d accounts)",
			small.heapMB, small.accounts, large.heapMB, large.accounts)
		e.report("memory", "peak_rss_mb", large.peakMB, small.peakMB, true)
	}
	return nil
}

// scalePhase ingests ScaleEvents events over a new population of n accounts
// and then measures sequential checks of random accounts of it.
func (e *env) scalePhase(ctx context.Context, name string, n int, pick func(int) int) (scaleResult, error) {
	r := scaleResult{accounts: n}
	runtime.GC()
	if err := resetPeakRSS(); err != nil {
		e.notef("cannot reset the peak RSS (%v); the memory figure covers the whole run", err)
	}
	pop, err := e.population(ctx, name, n, e.cfg.Tenants)
	if err != nil {
		return r, err
	}
	r.ingest, err = e.ingestEvents(ctx, pop, e.cfg.ScaleEvents, pick)
	if err != nil {
		return r, err
	}
	settled := e.waitCompactions(ctx, 30*time.Second)
	reqs := checkRequests(pop, 4096, 0)
	r.pop = pop
	seq, err := sequential(ctx, seqWarmup, seqMax/4, e.cfg.Duration, e.checkCalls(ctx, reqs))
	if err != nil {
		return r, fmt.Errorf("check: %w", err)
	}
	r.checkP50 = seq.quantile(0.5)
	r.peakMB, _ = rssMB()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r.heapMB = float64(ms.HeapAlloc) / (1 << 20)
	e.notef("scale %s: %d accounts, %d events ingested in %s, Pebble compactions settled in %s, check p50 %.0f µs over %d calls, peak RSS %.0f MiB",
		name, n, r.ingest.n, r.ingest.elapsed.Round(time.Millisecond), settled.Round(time.Millisecond), r.checkP50, len(seq), r.peakMB)
	return r, nil
}

// waitCompactions waits (at most max) until the projection store has run no
// flush or compaction for 100 ms, so that the checks that follow an
// ingest measure reads, not reads competing with the ingest's compactions
// for two cores. It returns how long it waited.
func (e *env) waitCompactions(ctx context.Context, max time.Duration) time.Duration {
	start := time.Now()
	db := e.l.Store().DB()
	for quiet := 0; quiet < 5 && time.Since(start) < max && ctx.Err() == nil; {
		if m := db.Metrics(); m.Compact.NumInProgress == 0 && m.Flush.NumInProgress == 0 {
			quiet++
		} else {
			quiet = 0
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
	return time.Since(start)
}
