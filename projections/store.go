package projections

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/ledgerworks/ledger/events"
)

// StoreOptions size the Pebble store. The zero value is usable.
type StoreOptions struct {
	// CacheBytes is the block cache (default 64 MiB), beside the memtables.
	CacheBytes int64
	// MemTableBytes is the memtable size (default 32 MiB).
	MemTableBytes uint64
	// CounterCacheEntries bounds the limits whose counters are kept in
	// memory for checks (default 32,768, each at most 64 buckets); negative
	// turns the cache off.
	CounterCacheEntries int
	// SeenFilterBytes sizes the in-memory filter that spares a Pebble read
	// when deduplicating a new event ID (default 16 MiB: about 13 million
	// IDs at 1% false positives; beyond that more reads go to Pebble), and
	// a quarter of it (at least 1 MiB) sizes the same kind of filter over
	// settled reservation ids; negative turns both off.
	SeenFilterBytes int
	// FS is the file system the store lives in (default: the operating
	// system's). Tests put one in front that fails reads on demand.
	FS vfs.FS
	// MustExist refuses to open a directory that holds no store instead
	// of making one there: what commands that only read a store want.
	MustExist bool
}

func (o StoreOptions) withDefaults() StoreOptions {
	if o.CacheBytes <= 0 {
		o.CacheBytes = 64 << 20
	}
	if o.MemTableBytes == 0 {
		o.MemTableBytes = 32 << 20
	}
	if o.CounterCacheEntries == 0 {
		o.CounterCacheEntries = 32 << 10
	}
	if o.SeenFilterBytes == 0 {
		o.SeenFilterBytes = 16 << 20
	}
	return o
}

// memTableStopWrites is how many memtables may wait for a flush before
// writes stall (Pebble's default).
const memTableStopWrites = 2

// L0 compaction thresholds, twice and thrice Pebble's defaults (4, 12).
// Counter and seen-ID keys land all over the key space, so every L0
// compaction rewrites most of the level below; letting more flushes gather
// first halves what compactions write and a third of their CPU at 1,000,000
// accounts. Reads pay it little: the prefix bloom filters skip L0 files
// without the limit.
const (
	l0CompactionThreshold = 8
	l0StopWritesThreshold = 24
)

// mergerName is stored by Pebble: never change it, or old stores refuse to open.
const mergerName = "ledger.int64add.v1"

// int64Add is the merge operator of counters: values are big-endian int64
// deltas that add up.
var int64Add = &pebble.Merger{
	Name: mergerName,
	Merge: func(_, value []byte) (pebble.ValueMerger, error) {
		m := &adder{}
		return m, m.MergeNewer(value)
	},
}

type adder struct{ sum int64 }

func (a *adder) MergeNewer(v []byte) error {
	if len(v) != 8 {
		return fmt.Errorf("counter operand of %d bytes", len(v))
	}
	a.sum += decodeInt(v)
	return nil
}
func (a *adder) MergeOlder(v []byte) error { return a.MergeNewer(v) }
func (a *adder) Finish(bool) ([]byte, io.Closer, error) {
	return encodeInt(a.sum), nil, nil
}

// quietLogger drops Pebble's informational lines; errors still surface
// through the API calls that hit them.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)           {}
func (quietLogger) Errorf(string, ...any)          {}
func (quietLogger) Fatalf(format string, a ...any) { panic(fmt.Sprintf(format, a...)) }

// Store is the Pebble copy of a projection: counters, tenant states, seen
// event IDs and the last applied stream sequence, always written together.
type Store struct {
	db       *pebble.DB
	cache    *pebble.Cache
	counters *counterCache // nil when turned off
	seen     *seenFilter   // nil when turned off
	settled  *seenFilter   // settled reservation ids; nil when seen is off
}

// OpenStore opens (or creates) a store in dir.
func OpenStore(dir string, o StoreOptions) (*Store, error) {
	o = o.withDefaults()
	if o.MustExist {
		// Pebble makes the directory before it finds no store in it.
		fs := o.FS
		if fs == nil {
			fs = vfs.Default
		}
		if _, err := fs.Stat(dir); err != nil {
			return nil, fmt.Errorf("open projection store %s: %w", dir, err)
		}
	}
	// Pebble charges its memtables to the block cache: give it room for
	// them on top of CacheBytes, or they take all of it and no block is ever
	// cached (every read then goes to the file system).
	cache := pebble.NewCache(o.CacheBytes + memTableStopWrites*int64(o.MemTableBytes))
	opts := &pebble.Options{
		ErrorIfNotExists:            o.MustExist,
		Cache:                       cache,
		FS:                          o.FS,
		MemTableSize:                o.MemTableBytes,
		MemTableStopWritesThreshold: memTableStopWrites,
		Merger:                      int64Add,
		Comparer:                    keyComparer,
		FormatMajorVersion:          pebble.FormatNewest,
		CompactionConcurrencyRange:  func() (int, int) { return 1, 2 },
		L0CompactionThreshold:       l0CompactionThreshold,
		L0StopWritesThreshold:       l0StopWritesThreshold,
		Logger:                      quietLogger{},
	}
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		cache.Unref()
		if ferr := checkComparer(dir); ferr != nil {
			return nil, ferr
		}
		return nil, fmt.Errorf("open projection store %s: %w", dir, err)
	}
	st := &Store{db: db, cache: cache}
	if o.CounterCacheEntries > 0 {
		st.counters = newCounterCache(o.CounterCacheEntries)
	}
	if o.SeenFilterBytes > 0 {
		st.seen = newSeenFilter(o.SeenFilterBytes)
		go st.seen.build(db, prefixSeen)
		// Every reserve asks whether its id was settled before; nearly
		// always it was not, and the filter says so without a Pebble read.
		st.settled = newSeenFilter(max(o.SeenFilterBytes/4, 1<<20))
		go st.settled.build(db, prefixSettled)
	}
	return st, nil
}

// Close closes the store.
func (s *Store) Close() error {
	if s.seen != nil {
		s.seen.close()
		s.settled.close()
	}
	err := s.db.Close()
	s.cache.Unref()
	return err
}

// DB exposes the Pebble handle to tools in this module (digest, checkpoint).
func (s *Store) DB() *pebble.DB { return s.db }

func (s *Store) get(key []byte) ([]byte, bool, error) {
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := bytes.Clone(v)
	closer.Close()
	return out, true, nil
}

// Applied returns the last stream sequence whose events are in the store.
func (s *Store) Applied() (uint64, error) {
	v, ok, err := s.get(keyApplied)
	if err != nil || !ok {
		return 0, err
	}
	return uint64(decodeInt(v)), nil
}

// LoadTenant returns a tenant's stored state, or a new empty one.
func (s *Store) LoadTenant(name string) (*Tenant, error) {
	v, ok, err := s.get(tenantKey(name))
	if err != nil {
		return nil, err
	}
	if !ok {
		return NewTenant(name), nil
	}
	t := &Tenant{}
	if err := msgpack.Unmarshal(v, t); err != nil {
		return nil, fmt.Errorf("decode tenant %s: %w", name, err)
	}
	return t.Restored(), nil
}

// Seen reports whether an event ID of a tenant was already applied.
func (s *Store) Seen(tenant, id string) (bool, error) {
	if s.seen != nil && s.seen.ready.Load() && !s.seen.mayContain(tenant, id) {
		return false, nil
	}
	var buf [256]byte
	_, ok, err := s.get(seenKey(buf[:0], tenant, id))
	return ok, err
}

// Commit is everything one batch of stream messages changes.
type Commit struct {
	Deltas  *Deltas
	Tenants []*Tenant // states that changed
	Seen    []SeenID  // event IDs applied
	Applied uint64    // last stream sequence covered
}

// SeenID is an applied event ID and the sequence that applied it.
type SeenID struct {
	Tenant, ID string
	Seq        uint64
}

// Write applies a commit in one Pebble batch. It does not fsync: the stream
// is the durable copy, and a lost tail is folded again from the stored
// applied sequence, which is in the same batch as what it covers.
func (s *Store) Write(c *Commit) error {
	b := s.db.NewBatch()
	defer b.Close()
	var key []byte
	if c.Deltas != nil {
		// Sorted keys make the batch, and so the store, independent of map
		// order. The keys are encoded once, into one buffer, and sorted as
		// Pebble orders them.
		type entry struct {
			off, end int
			n        int64
		}
		ents := make([]entry, 0, len(c.Deltas.Counters))
		for k, n := range c.Deltas.Counters {
			if n != 0 {
				off := len(key)
				key = counterKey(key, &k)
				ents = append(ents, entry{off, len(key), n})
			}
		}
		slices.SortFunc(ents, func(a, b entry) int { return bytes.Compare(key[a.off:a.end], key[b.off:b.end]) })
		var v [8]byte // Pebble copies keys and values into the batch
		for _, e := range ents {
			binary.BigEndian.PutUint64(v[:], uint64(e.n))
			if err := b.Merge(key[e.off:e.end], v[:], nil); err != nil {
				return err
			}
		}
		key = key[:0]
		for k, n := range c.Deltas.Totals {
			if n == 0 {
				continue
			}
			if err := b.Merge(totalKey(k.Tenant, k.Metric), encodeInt(n), nil); err != nil {
				return err
			}
		}
	}
	for _, t := range c.Tenants {
		v, err := encodeTenant(t) // tenantcodec.go: msgpack.Marshal, by hand
		if err != nil {
			return fmt.Errorf("encode tenant %s: %w", t.Name, err)
		}
		if err := b.Set(tenantKey(t.Name), v, nil); err != nil {
			return err
		}
	}
	var seq [8]byte
	for _, id := range c.Seen {
		if s.seen != nil {
			s.seen.add(id.Tenant, id.ID) // before the commit: never behind Pebble
		}
		key = seenKey(key[:0], id.Tenant, id.ID)
		binary.BigEndian.PutUint64(seq[:], id.Seq)
		if err := b.Set(key, seq[:], nil); err != nil {
			return err
		}
	}
	if c.Deltas != nil {
		if err := writeExpiries(b, c.Deltas.Expiries); err != nil {
			return err
		}
		if err := s.writeSettled(b, c.Deltas); err != nil {
			return err
		}
	}
	if err := b.Set(keyApplied, encodeInt(int64(c.Applied)), nil); err != nil {
		return err
	}
	if s.counters == nil {
		return b.Commit(pebble.NoSync)
	}
	s.counters.beginCommit()
	defer s.counters.endCommit()
	if err := b.Commit(pebble.NoSync); err != nil {
		return err
	}
	if c.Deltas != nil {
		s.counters.apply(c.Deltas.Counters)
	}
	return nil
}

// Sum implements Counters from the counter cache, or with one bounded scan
// over the limit's buckets, which then fills the cache.
//
// A counter it cannot read counts as zero: use SumErr, or read through
// Projector.View, where an unreadable counter is an error, not an allowance.
func (s *Store) Sum(k CounterKey, from, to int64) (used, reserved, oldest int64) {
	used, reserved, oldest, _ = s.SumErr(k, from, to)
	return used, reserved, oldest
}

// SumErr is Sum that says when Pebble could not be read.
func (s *Store) SumErr(k CounterKey, from, to int64) (used, reserved, oldest int64, err error) {
	if s.counters == nil {
		return s.sumPebble(k, from, to)
	}
	if used, reserved, oldest, ok := s.counters.sum(&k, from, to); ok {
		return used, reserved, oldest, nil
	}
	gen, ok := s.counters.loading()
	if !ok {
		return s.sumPebble(k, from, to)
	}
	// A load that fails for any reason falls back to the plain scan, which
	// reports a read error if there is one.
	var buckets []ccBucket
	ceil := int64(math.MaxInt64)
	if from == to {
		var ok bool
		if buckets, ok = s.loadBucket(&k, from); !ok {
			return s.sumPebble(k, from, to)
		}
		ceil = to
	} else {
		var complete bool
		if buckets, complete = s.loadBuckets(&k, from); !complete {
			return s.sumPebble(k, from, to)
		}
	}
	e := ccEntry{floor: from, ceil: ceil, buckets: buckets}
	used, reserved, oldest = e.sum(from, to)
	s.counters.insert(&k, from, ceil, buckets, gen)
	return used, reserved, oldest, nil
}

// loadBucket reads one bucket of k's limit: its r and u keys, with one
// prefix seek that the limit's bloom filters keep to the tables holding it.
func (s *Store) loadBucket(k *CounterKey, bucket int64) ([]ccBucket, bool) {
	lower := counterPrefix(make([]byte, 0, 2*96), k)
	n := len(lower)
	lower = appendBucket(lower, bucket)
	upper := appendBucket(append(lower[len(lower):], lower[:n]...), bucket+1) // same array, after lower
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, false
	}
	defer it.Close()
	b := ccBucket{bucket: bucket}
	for ok := it.SeekPrefixGE(lower); ok; ok = it.Next() {
		key := it.Key()
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, false
		}
		if key[len(key)-1] == 'r' {
			b.reserved += decodeInt(v)
		} else {
			b.used += decodeInt(v)
		}
	}
	if it.Error() != nil {
		return nil, false
	}
	if b.used == 0 && b.reserved == 0 {
		return nil, true
	}
	return []ccBucket{b}, true
}

// loadBuckets reads every bucket of k's limit from bucket from on; complete
// is false when there are more than the cache keeps (or on an error).
func (s *Store) loadBuckets(k *CounterKey, from int64) (buckets []ccBucket, complete bool) {
	prefix := counterPrefix(make([]byte, 0, 96), k)
	lower := appendBucket(bytes.Clone(prefix), from)
	upper := append(bytes.Clone(prefix), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, false
	}
	defer it.Close()
	// A prefix seek: tables whose bloom filter rules the limit out are skipped.
	for ok := it.SeekPrefixGE(lower); ok; ok = it.Next() {
		key := it.Key()
		if len(key) != len(prefix)+9 {
			return nil, false
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, false
		}
		b := decodeBucket(key[len(prefix):])
		if len(buckets) == 0 || buckets[len(buckets)-1].bucket != b {
			if len(buckets) == maxCachedBuckets {
				return nil, false
			}
			buckets = append(buckets, ccBucket{bucket: b})
		}
		if key[len(key)-1] == 'r' {
			buckets[len(buckets)-1].reserved += decodeInt(v)
		} else {
			buckets[len(buckets)-1].used += decodeInt(v)
		}
	}
	if it.Error() != nil {
		return nil, false
	}
	// Buckets that add up to nothing are the same as absent.
	out := buckets[:0]
	for _, b := range buckets {
		if b.used != 0 || b.reserved != 0 {
			out = append(out, b)
		}
	}
	return out, true
}

// sumPebble is Sum by one bounded scan over the limit's buckets.
func (s *Store) sumPebble(k CounterKey, from, to int64) (used, reserved, oldest int64, err error) {
	if from > to {
		return 0, 0, 0, nil // no bucket; and a seek needs lower <= upper bound
	}
	prefix := counterPrefix(make([]byte, 0, 96), &k)
	lower := appendBucket(bytes.Clone(prefix), from)
	upper := appendBucket(bytes.Clone(prefix), to+1)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return 0, 0, 0, err
	}
	defer it.Close()
	for ok := it.SeekPrefixGE(lower); ok; ok = it.Next() {
		key := it.Key()
		v, err := it.ValueAndErr()
		if err != nil {
			return 0, 0, 0, err
		}
		n := decodeInt(v)
		if n == 0 {
			continue
		}
		if oldest == 0 {
			oldest = int64(decodeBucket(key[len(prefix):]))
		}
		if key[len(key)-1] == 'r' {
			reserved += n
		} else {
			used += n
		}
	}
	return used, reserved, oldest, it.Error()
}

func decodeBucket(b []byte) int64 {
	return int64(uint64(b[0])<<56|uint64(b[1])<<48|uint64(b[2])<<40|uint64(b[3])<<32|
		uint64(b[4])<<24|uint64(b[5])<<16|uint64(b[6])<<8|uint64(b[7])) ^ (-1 << 63)
}

// Totals returns a tenant's all-time totals per metric.
func (s *Store) Totals(tenant string) (map[events.Metric]int64, error) {
	prefix := append([]byte{prefixTotal}, tenant...)
	prefix = append(prefix, 0)
	upper := append(bytes.Clone(prefix[:len(prefix)-1]), 1)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: upper})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	out := map[events.Metric]int64{}
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, err
		}
		out[events.Metric(it.Key()[len(prefix):])] = decodeInt(v)
	}
	return out, it.Error()
}
