package projections

import (
	"sort"
	"sync"
	"sync/atomic"
)

// counterCache keeps recently read windowed counters in memory, so that a
// check sums a limit's buckets from memory instead of scanning Pebble. Pebble
// stays the durable copy: an entry is loaded from it on a miss, and every
// commit that the store writes adds its deltas to the entries it touches, so
// an entry always equals what Pebble holds.
//
// An entry holds every bucket of one limit (tenant, quota, epoch, split,
// limit) from its floor to its ceiling; a sum outside them, and a limit with
// more buckets than maxCachedBuckets, are read from Pebble. A sum over one
// bucket (calendar and rolling windows, permits) loads just that bucket, with
// two point reads that Pebble's bloom filters make cheap; a longer one loads
// every bucket from its start on. The number
// of entries is bounded (StoreOptions.CounterCacheEntries); a full shard
// drops an arbitrary entry.
//
// A load races with commits that the loader does not see (the decider reads
// counters outside the projector's lock): commits bump gen to an odd number
// before writing to Pebble and back to even after updating the entries, and a
// loaded entry is kept only if gen did not move while it was read, so a stale
// read is never cached.
type counterCache struct {
	gen    atomic.Uint64
	shards [ccShards]ccShard
	max    int // entries per shard
}

const (
	ccShards         = 16
	maxCachedBuckets = 64
)

type ccShard struct {
	mu sync.Mutex
	m  map[limitRef]*ccEntry
}

// limitRef names the counters of one limit of one split: a CounterKey
// without its bucket and reserved flag.
type limitRef struct {
	Tenant, Quota string
	Epoch         uint32
	Split, Limit  string
}

func refOf(k *CounterKey) limitRef {
	return limitRef{Tenant: k.Tenant, Quota: k.Quota, Epoch: k.Epoch, Split: k.Split, Limit: k.Limit}
}

type ccEntry struct {
	floor, ceil int64      // every bucket from floor to ceil is in buckets
	buckets     []ccBucket // sorted by bucket
}

type ccBucket struct {
	bucket, used, reserved int64
}

func newCounterCache(entries int) *counterCache {
	c := &counterCache{max: max(entries/ccShards, 1)}
	for i := range c.shards {
		c.shards[i].m = map[limitRef]*ccEntry{}
	}
	return c
}

func (c *counterCache) shard(r *limitRef) *ccShard {
	// FNV-1a over the tenant and the split: the parts that vary most.
	h := uint32(2166136261)
	for i := 0; i < len(r.Tenant); i++ {
		h = (h ^ uint32(r.Tenant[i])) * 16777619
	}
	for i := 0; i < len(r.Split); i++ {
		h = (h ^ uint32(r.Split[i])) * 16777619
	}
	return &c.shards[h%ccShards]
}

// sum answers Store.Sum from memory, or reports false.
func (c *counterCache) sum(k *CounterKey, from, to int64) (used, reserved, oldest int64, ok bool) {
	r := refOf(k)
	s := c.shard(&r)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[r]
	if e == nil || from < e.floor || to > e.ceil {
		return 0, 0, 0, false
	}
	used, reserved, oldest = e.sum(from, to)
	return used, reserved, oldest, true
}

func (e *ccEntry) sum(from, to int64) (used, reserved, oldest int64) {
	i := sort.Search(len(e.buckets), func(i int) bool { return e.buckets[i].bucket >= from })
	for ; i < len(e.buckets) && e.buckets[i].bucket <= to; i++ {
		b := &e.buckets[i]
		if b.used == 0 && b.reserved == 0 {
			continue
		}
		if oldest == 0 {
			oldest = b.bucket
		}
		used += b.used
		reserved += b.reserved
	}
	return used, reserved, oldest
}

// loading returns the generation a load must see unchanged to be kept, and
// false while a commit is being applied.
func (c *counterCache) loading() (uint64, bool) {
	g := c.gen.Load()
	return g, g%2 == 0
}

// insert keeps an entry loaded from Pebble at generation gen.
func (c *counterCache) insert(k *CounterKey, floor, ceil int64, buckets []ccBucket, gen uint64) {
	r := refOf(k)
	s := c.shard(&r)
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.gen.Load() != gen {
		return // a commit ran meanwhile: what was read may be stale
	}
	if _, ok := s.m[r]; !ok && len(s.m) >= c.max {
		for old := range s.m {
			delete(s.m, old)
			break
		}
	}
	s.m[r] = &ccEntry{floor: floor, ceil: ceil, buckets: buckets}
}

// beginCommit and endCommit bracket a commit: the Pebble write, then apply.
func (c *counterCache) beginCommit() { c.gen.Add(1) }
func (c *counterCache) endCommit()   { c.gen.Add(1) }

// apply adds committed deltas to the entries they touch.
func (c *counterCache) apply(d map[CounterKey]int64) {
	for k, n := range d {
		if n == 0 {
			continue
		}
		r := refOf(&k)
		s := c.shard(&r)
		s.mu.Lock()
		if e := s.m[r]; e != nil {
			e.add(k.Bucket, k.Reserved, n)
		}
		s.mu.Unlock()
	}
}

// add adds n to a bucket.
func (e *ccEntry) add(bucket int64, reserved bool, n int64) {
	if bucket < e.floor || bucket > e.ceil {
		return // not held here; Pebble has it
	}
	i := sort.Search(len(e.buckets), func(i int) bool { return e.buckets[i].bucket >= bucket })
	if i == len(e.buckets) || e.buckets[i].bucket != bucket {
		e.buckets = append(e.buckets, ccBucket{})
		copy(e.buckets[i+1:], e.buckets[i:])
		e.buckets[i] = ccBucket{bucket: bucket}
	}
	b := &e.buckets[i]
	if reserved {
		b.reserved += n
	} else {
		b.used += n
	}
	if b.used == 0 && b.reserved == 0 {
		e.buckets = append(e.buckets[:i], e.buckets[i+1:]...) // same as absent
	}
	if len(e.buckets) > maxCachedBuckets {
		// Drop the oldest bucket: the entry stays complete above it.
		e.floor = e.buckets[0].bucket + 1
		e.buckets = append(e.buckets[:0], e.buckets[1:]...)
	}
}

// len returns the number of entries (for tests and figures).
func (c *counterCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}
