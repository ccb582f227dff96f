package projections

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// The counter cache must answer every Sum exactly as a scan of Pebble does,
// whatever the commits, the queries, evictions and dropped buckets. This test
// runs random commits and random sums on a store with a tiny cache and
// compares each cached answer with the scan.
func TestCounterCacheMatchesPebble(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 3))
	s, err := OpenStore(t.TempDir(), StoreOptions{CacheBytes: 8 << 20, MemTableBytes: 4 << 20, CounterCacheEntries: ccShards * 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	limits := []CounterKey{}
	for _, tenant := range []string{"a", "b", "c"} {
		for _, split := range []string{"", "u1", "u2", "u3"} {
			for _, l := range []string{"tokens|sliding:60", "tokens|sliding:600", "requests|calendar:day"} {
				limits = append(limits, CounterKey{Tenant: tenant, Quota: "q", Split: split, Limit: l, Epoch: uint32(r.IntN(2))})
			}
		}
	}
	now := int64(1_700_000_000)
	hits, misses := 0, 0
	for round := range 400 {
		d := NewDeltas()
		for range 1 + r.IntN(30) {
			k := limits[r.IntN(len(limits))]
			// Mostly recent buckets, sometimes far back (late events below
			// a floor), sometimes many distinct ones (past maxCachedBuckets).
			switch r.IntN(10) {
			case 0:
				k.Bucket = now - int64(r.IntN(5000))
			case 1:
				k.Bucket = now + int64(r.IntN(200))
			default:
				k.Bucket = now - int64(r.IntN(90))
			}
			k.Reserved = r.IntN(3) == 0
			n := int64(r.IntN(100)) - 30
			d.add(k, n)
			if r.IntN(4) == 0 { // a reservation settled in the same bucket
				d.add(k, -n)
			}
		}
		if err := s.Write(&Commit{Deltas: d, Applied: uint64(round + 1)}); err != nil {
			t.Fatal(err)
		}
		for range 20 {
			k := limits[r.IntN(len(limits))]
			from := now - int64(r.IntN(120))
			if r.IntN(10) == 0 {
				from = now - int64(r.IntN(6000))
			}
			to := from + int64(r.IntN(150))
			if r.IntN(3) == 0 {
				to = from // one bucket: loaded with point reads
			}
			if _, _, _, ok := s.counters.sum(&k, from, to); ok {
				hits++
			} else {
				misses++
			}
			u1, r1, o1 := s.Sum(k, from, to)
			u2, r2, o2, err := s.sumPebble(k, from, to)
			if err != nil {
				t.Fatal(err)
			}
			if u1 != u2 || r1 != r2 || o1 != o2 {
				t.Fatalf("round %d: Sum(%+v, %d, %d) = %d, %d, %d from the cache, %d, %d, %d in Pebble", round, k, from, to, u1, r1, o1, u2, r2, o2)
			}
		}
		if r.IntN(50) == 0 {
			now += int64(r.IntN(100))
		}
	}
	t.Logf("%d sums from the cache, %d from Pebble", hits, misses)
	if hits < 1000 || misses < 100 {
		t.Errorf("the test exercises the cache too little: %d hits, %d misses", hits, misses)
	}
	if n := s.counters.len(); n == 0 || n > ccShards*2 {
		t.Errorf("cache holds %d entries, want 1..%d", n, ccShards*2)
	}
}

// Readers that sum outside any lock while commits run (as the decider does)
// never make the cache keep a stale value: once the commits are done, every
// cached sum equals Pebble.
func TestCounterCacheConcurrentLoads(t *testing.T) {
	s, err := OpenStore(t.TempDir(), StoreOptions{CacheBytes: 8 << 20, MemTableBytes: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	keys := make([]CounterKey, 8)
	for i := range keys {
		keys[i] = CounterKey{Tenant: "t", Quota: "q", Split: string(rune('a' + i)), Limit: "tokens|sliding:60", Bucket: 100}
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				s.Sum(keys[(i+w)%len(keys)], 41+int64(i%50), 100)
			}
		}()
	}
	for round := range 300 {
		d := NewDeltas()
		for _, k := range keys {
			d.add(k, 1)
		}
		if err := s.Write(&Commit{Deltas: d, Applied: uint64(round + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	for _, k := range keys {
		if u, _, _ := s.Sum(k, 41, 100); u != 300 {
			t.Errorf("%s: cached sum %d, want 300", k.Split, u)
		}
	}
}
