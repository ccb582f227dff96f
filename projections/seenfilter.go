package projections

import (
	"hash/maphash"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
)

// seenFilter is an in-memory Bloom filter over every event ID the store has
// applied, so that deduplicating a new event (nearly all of them) needs no
// Pebble read: "not in the filter" means "never applied"; anything else is
// checked in Pebble. It never changes an answer, only how it is found.
//
// It covers the store only once built: OpenStore starts a scan of the seen
// IDs in the background, and until it ends every lookup goes to Pebble.
// Writes add their IDs before they commit, so an ID is in the filter no
// later than it is in Pebble. Its size is fixed (StoreOptions.SeenFilterBytes):
// past about one ID per 10 bits, false positives grow and more lookups go to
// Pebble, which stays exact.
type seenFilter struct {
	seed  maphash.Seed
	bits  []atomic.Uint64
	ready atomic.Bool
	ids   atomic.Int64 // added so far (with repeats), for figures
	stop  chan struct{}
	done  chan struct{}
}

const seenFilterHashes = 7

func newSeenFilter(bytes int) *seenFilter {
	words := max(bytes/64, 1) * 8 // whole 64-byte blocks
	return &seenFilter{seed: maphash.MakeSeed(), bits: make([]atomic.Uint64, words), stop: make(chan struct{}), done: make(chan struct{})}
}

func (f *seenFilter) hash(tenant, id string) uint64 {
	var h maphash.Hash
	h.SetSeed(f.seed)
	h.WriteString(tenant)
	h.WriteByte(0)
	h.WriteString(id)
	return h.Sum64()
}

// hashKey is hash of the stored form of an ID: tenant, 0, id.
func (f *seenFilter) hashKey(k []byte) uint64 {
	return maphash.Bytes(f.seed, k)
}

func (f *seenFilter) add(tenant, id string) { f.addHash(f.hash(tenant, id)) }

func (f *seenFilter) addHash(h uint64) {
	blk, bits := f.block(h)
	for i, m := range bits {
		if m != 0 {
			blk[i].Or(m)
		}
	}
	f.ids.Add(1)
}

// block returns the 64-byte block (8 words) an ID hashes to and the bits it
// sets there: a blocked Bloom filter, so that an ID costs one cache miss, not
// seenFilterHashes of them.
func (f *seenFilter) block(h uint64) ([]atomic.Uint64, [8]uint64) {
	nb := uint64(len(f.bits) / 8)
	start := (h % nb) * 8
	var bits [8]uint64
	h2 := h>>32 | h<<32 | 1
	for i := range uint64(seenFilterHashes) {
		b := (h2 * (i + 1)) >> 55 // 9 bits: one of 512
		bits[b/64] |= 1 << (b % 64)
	}
	return f.bits[start : start+8], bits
}

// mayContain reports false only for an ID that was never added; it is
// meaningful once the filter is ready.
func (f *seenFilter) mayContain(tenant, id string) bool {
	blk, bits := f.block(f.hash(tenant, id))
	for i, m := range bits {
		if blk[i].Load()&m != m {
			return false
		}
	}
	return true
}

// build adds every ID stored in db under prefix (keys of the form
// prefix <tenant> 0 <id>), then marks the filter ready. It gives up (the
// filter stays unused) on an error or when stopped.
func (f *seenFilter) build(db *pebble.DB, prefix byte) {
	defer close(f.done)
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefix}, UpperBound: []byte{prefix + 1}})
	if err != nil {
		return
	}
	defer it.Close()
	n := 0
	for it.First(); it.Valid(); it.Next() {
		if n++; n%4096 == 0 {
			select {
			case <-f.stop:
				return
			default:
			}
		}
		f.addHash(f.hashKey(it.Key()[1:]))
	}
	if it.Error() == nil {
		f.ready.Store(true)
	}
}

// close stops a build still running and waits for it.
func (f *seenFilter) close() {
	close(f.stop)
	<-f.done
}
