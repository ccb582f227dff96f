package loadtest

import (
	"bytes"
	"context"
	"regexp"
	"testing"
	"time"
)

// The load command runs every scenario end to end at a tiny size and prints
// every figure in the documented form. Nothing here judges a figure: the
// numbers are for people and scripts, never assertions.
func TestRunPrintsEveryFigure(t *testing.T) {
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	err := Run(ctx, Config{
		Events: 3000, Accounts: 40, Tenants: 4, ReserveAccounts: 100, ScaleAccounts: 2000,
		Concurrency: 8, Duration: 200 * time.Millisecond, Timeout: time.Minute, Out: &out,
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	line := regexp.MustCompile(`(?m)^bench (\w+) (\w+)=([0-9.]+) baseline_(\w+)=([0-9.]+) ratio=([0-9.]+)$`)
	got := map[string]bool{}
	for _, m := range line.FindAllStringSubmatch(out.String(), -1) {
		if m[2] != m[4] {
			t.Errorf("figure %s has baseline_%s", m[2], m[4])
		}
		got[m[1]+" "+m[2]] = true
	}
	for _, want := range []string{
		"ingest events_per_s", "check p50_us", "check p99_us", "check throughput_per_s",
		"reserve pairs_per_s", "reserve p99_us", "reserve hot_pairs_per_s", "rebuild events_per_s",
		"scale check_p50_us", "scale ingest_events_per_s", "memory peak_rss_mb",
	} {
		if !got[want] {
			t.Errorf("no line for %q", want)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", out.String())
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{{Scenario: "nope"}, {Durability: "sometimes"}, {Accounts: 4, Tenants: 8}} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
	if err := (Config{Scenario: "ingest,check"}).Validate(); err != nil {
		t.Error(err)
	}
}

// interleaved alternates its functions in blocks, so that a baseline and
// what is compared with it see the same seconds of the machine.
func TestInterleavedAlternatesInBlocks(t *testing.T) {
	var order []int
	calls := [2]int{}
	fn := func(k int) func(int) error {
		return func(i int) error {
			if i != calls[k] {
				t.Errorf("function %d: call %d numbered %d", k, calls[k], i)
			}
			calls[k]++
			order = append(order, k)
			return nil
		}
	}
	const warmup, max = 3, 2*interleaveBlock + 50
	lat, err := interleaved(context.Background(), warmup, max, time.Minute, fn(0), fn(1))
	if err != nil {
		t.Fatal(err)
	}
	if len(lat) != 2 || len(lat[0]) != max || len(lat[1]) != max {
		t.Fatalf("measured %d and %d calls, want %d each", len(lat[0]), len(lat[1]), max)
	}
	// Warm-up of each, then blocks of 0s and 1s taking turns.
	want := append(make([]int, warmup), make([]int, warmup)...)
	for k := warmup; k < 2*warmup; k++ {
		want[k] = 1
	}
	for n := 0; n < max; n += interleaveBlock {
		for k := range 2 {
			for range min(interleaveBlock, max-n) {
				want = append(want, k)
			}
		}
	}
	if len(order) != len(want) {
		t.Fatalf("%d calls, want %d", len(order), len(want))
	}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("call %d went to function %d, want %d", i, order[i], want[i])
		}
	}
}
