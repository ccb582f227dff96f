package projections

import (
	"bytes"
	"encoding/binary"

	"github.com/cockroachdb/pebble/v2"
)

// Browsing the store for people (the dashboard): which tenants it holds,
// which split values a quota has counters for. Both are bounded scans, in
// key order, whatever the store's size.

// Tenants returns the names of the tenants the store holds a state for (every
// tenant with at least one folded message) that start with prefix and sort
// after `after` ("": from the first), in byte order, at most limit of them;
// more says whether others follow.
func (s *Store) Tenants(prefix, after string, limit int) (names []string, more bool, err error) {
	lower := tenantKey(prefix)
	if after != "" {
		// The first key after `after` itself: after + 0x00.
		if a := append(tenantKey(after), 0); bytes.Compare(a, lower) > 0 {
			lower = a
		}
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(tenantKey(prefix))})
	if err != nil {
		return nil, false, err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		if len(names) == limit {
			return names, true, it.Error()
		}
		names = append(names, string(it.Key()[1:]))
	}
	return names, false, it.Error()
}

// Splits returns the split values (events.Quota.SplitKey) a tenant's quota
// has counters for, at reset epochs from fromEpoch on (the quota's own epoch:
// anything older was reset), in byte order, at most limit of them; more
// says whether others follow. An unsplit quota's only split is "". It seeks
// from one split to the next, so its cost is the number of splits returned,
// not the number of counters.
func (s *Store) Splits(tenant, quota string, fromEpoch uint32, limit int) (splits []string, more bool, err error) {
	prefix := []byte{prefixCounter}
	prefix = append(prefix, tenant...)
	prefix = append(prefix, 0)
	prefix = append(prefix, quota...)
	prefix = append(prefix, 0)
	it, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: binary.BigEndian.AppendUint32(bytes.Clone(prefix), fromEpoch),
		UpperBound: prefixEnd(prefix),
	})
	if err != nil {
		return nil, false, err
	}
	defer it.Close()
	seen := map[string]bool{}
	for ok := it.First(); ok; {
		k := it.Key()
		rest := k[len(prefix):]
		if len(rest) < 4 {
			ok = it.Next()
			continue
		}
		end := bytes.IndexByte(rest[4:], 0)
		if end < 0 {
			ok = it.Next()
			continue
		}
		split := string(rest[4 : 4+end])
		if !seen[split] {
			if len(splits) == limit {
				return splits, true, it.Error()
			}
			seen[split] = true
			splits = append(splits, split)
		}
		// Every key of this epoch and split lies below
		// prefix epoch split 0x01 (no split holds a 0 byte).
		next := append(bytes.Clone(k[:len(prefix)+4+end]), 1)
		ok = it.SeekGE(next)
	}
	return splits, false, it.Error()
}

// prefixEnd is the first key after every key starting with p.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil // p is all 0xff: no upper bound
}

// Tenants is Store.Tenants on the projector's store.
func (p *Projector) Tenants(prefix, after string, limit int) ([]string, bool, error) {
	return p.store.Tenants(prefix, after, limit)
}

// Splits is Store.Splits on the projector's store.
func (p *Projector) Splits(tenant, quota string, fromEpoch uint32, limit int) ([]string, bool, error) {
	return p.store.Splits(tenant, quota, fromEpoch, limit)
}

// QuotaEpoch is the reset epoch of a quota as a whole: counters of older
// epochs were reset (Splits' fromEpoch).
func (t *Tenant) QuotaEpoch(quota string) uint32 { return t.Epochs[quota] }
