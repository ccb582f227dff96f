package loadtest

import (
	"bufio"
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// latencies are the durations of sequential calls.
type latencies []time.Duration

// quantile returns the q-quantile (0..1) in microseconds.
func (l latencies) quantile(q float64) float64 {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	i := int(q * float64(len(s)-1))
	return float64(s[i]) / float64(time.Microsecond)
}

// sequential calls fn one at a time: warm-up calls first, then up to max
// measured calls within d.
func sequential(ctx context.Context, warmup, max int, d time.Duration, fn func(i int) error) (latencies, error) {
	for i := range warmup {
		if err := fn(i); err != nil {
			return nil, err
		}
	}
	out := make(latencies, 0, max)
	deadline := time.Now().Add(d)
	for i := 0; i < max && ctx.Err() == nil; i++ {
		t := time.Now()
		if err := fn(warmup + i); err != nil {
			return nil, err
		}
		end := time.Now()
		out = append(out, end.Sub(t))
		if end.After(deadline) {
			break
		}
	}
	return out, nil
}

// interleaved measures sequential calls of several functions (a baseline
// and what is compared with it) in alternating blocks of interleaveBlock
// calls: warm-up calls of each first, then up to max measured calls of each
// within d per function. The machine's pace drifts over seconds (other
// processes, the ledger's own compactions, CPU frequency), and measuring one
// function after the other put that drift into their ratio; alternating
// gives both the same conditions.
func interleaved(ctx context.Context, warmup, max int, d time.Duration, fns ...func(i int) error) ([]latencies, error) {
	for _, fn := range fns {
		for i := range warmup {
			if err := fn(i); err != nil {
				return nil, err
			}
		}
	}
	out := make([]latencies, len(fns))
	for k := range out {
		out[k] = make(latencies, 0, max)
	}
	deadline := time.Now().Add(time.Duration(len(fns)) * d)
	for n := 0; n < max && ctx.Err() == nil && time.Now().Before(deadline); n += interleaveBlock {
		for k, fn := range fns {
			for i := n; i < min(n+interleaveBlock, max); i++ {
				t := time.Now()
				if err := fn(warmup + i); err != nil {
					return nil, err
				}
				out[k] = append(out[k], time.Since(t))
			}
		}
	}
	return out, nil
}

// interleaveBlock is the calls of one function in a row in interleaved:
// enough that switching costs nothing measurable, few enough that a second
// holds dozens of switches.
const interleaveBlock = 200

// concurrentRounds is concurrent for several functions taking turns: rounds
// rounds of d/rounds each per function, for the same reason as interleaved.
// It returns each function's completed calls per second over its rounds.
func concurrentRounds(ctx context.Context, n, rounds int, d time.Duration, fns ...func(i int) error) ([]float64, error) {
	out := make([]float64, len(fns))
	for range rounds {
		for k, fn := range fns {
			r, err := concurrent(ctx, n, d/time.Duration(rounds), fn)
			if err != nil {
				return nil, err
			}
			out[k] += r / float64(rounds) // rounds of equal length: the mean rate
		}
	}
	return out, nil
}

// concurrent runs fn from n goroutines for d and returns completed calls per
// second. Worker w's k-th call gets i = k*n+w.
func concurrent(ctx context.Context, n int, d time.Duration, fn func(i int) error) (float64, error) {
	var done atomic.Int64
	var stop atomic.Bool
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; !stop.Load(); k++ {
				if err := fn(k*n + w); err != nil {
					once.Do(func() { firstErr = err })
					stop.Store(true)
					return
				}
				done.Add(1)
			}
		}()
	}
	t := time.NewTimer(d)
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return 0, firstErr
	}
	return float64(done.Load()) / elapsed.Seconds(), nil
}

// resetPeakRSS resets the process's peak resident set size (Linux: writing 5
// to /proc/self/clear_refs), so that a later peakRSS covers only what
// follows.
func resetPeakRSS() error {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// rssMB returns the process's peak (VmHWM) and current (VmRSS) resident set
// sizes in MiB.
func rssMB() (peak, cur float64) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		kb, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmHWM":
			peak = kb / 1024
		case "VmRSS":
			cur = kb / 1024
		}
	}
	return peak, cur
}
