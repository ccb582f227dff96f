package projections

import (
	"bytes"
	"encoding/binary"

	"github.com/ledgerworks/ledger/events"
)

// This file lets tools outside the package (replay: digests, audits) read a
// store entry by entry without knowing its key layout. It only reads.

// EntryKind says what one key of the store holds.
type EntryKind int

// Entry kinds. Unknown covers keys this code does not know (written by a
// newer version); readers should still account for them.
const (
	EntryUnknown   EntryKind = iota
	EntryApplied             // the last applied stream sequence
	EntryTenant              // a tenant's state (msgpack)
	EntryCounter             // a windowed counter (int64)
	EntryTotal               // a tenant's all-time total of a metric (int64)
	EntrySeen                // an applied event ID -> the sequence that applied it
	EntryExpiry              // an open reservation by expiry time (Int: Unix ns; ID: the reservation)
	EntrySettled             // a settled reservation (msgpack ClosedReservation; ID: the reservation)
	EntrySettledAt           // a settled reservation by settlement time (Int: Unix ns; ID: the reservation)
)

func (k EntryKind) String() string {
	switch k {
	case EntryApplied:
		return "applied"
	case EntryTenant:
		return "tenant"
	case EntryCounter:
		return "counter"
	case EntryTotal:
		return "total"
	case EntrySeen:
		return "seen"
	case EntryExpiry:
		return "expiry"
	case EntrySettled:
		return "settled"
	case EntrySettledAt:
		return "settled_at"
	}
	return "unknown"
}

// Entry is one key/value of the store, decoded. Key and Value are only valid
// during the Scan callback that received them.
type Entry struct {
	Kind    EntryKind
	Key     []byte
	Value   []byte
	Tenant  string        // tenant, counter, total, seen
	Counter CounterKey    // counter
	Metric  events.Metric // total
	ID      string        // seen: the event ID; expiry, settled, settled_at: the reservation
	// Int is the integer value of applied, counter, total and seen entries.
	Int int64
}

// ParseEntry decodes a key and its value. A key it cannot decode is
// EntryUnknown.
func ParseEntry(key, value []byte) Entry {
	e := Entry{Kind: EntryUnknown, Key: key, Value: value}
	if len(key) == 0 {
		return e
	}
	rest := key[1:]
	switch key[0] {
	case prefixMeta:
		if bytes.Equal(key, keyApplied) && len(value) == 8 {
			e.Kind, e.Int = EntryApplied, decodeInt(value)
		}
	case prefixTenant:
		if len(rest) > 0 {
			e.Kind, e.Tenant = EntryTenant, string(rest)
		}
	case prefixTotal, prefixSeen:
		i := bytes.IndexByte(rest, 0)
		if i <= 0 || len(value) != 8 {
			return e
		}
		e.Tenant, e.Int = string(rest[:i]), decodeInt(value)
		if key[0] == prefixTotal {
			e.Kind, e.Metric = EntryTotal, events.Metric(rest[i+1:])
		} else {
			e.Kind, e.ID = EntrySeen, string(rest[i+1:])
		}
	case prefixExpiry:
		// x <expires at:8> <tenant> 0 <reservation>
		if len(rest) < 8+1+1+1 {
			return e
		}
		i := bytes.IndexByte(rest[8:], 0)
		if i <= 0 {
			return e
		}
		e.Kind, e.Int = EntryExpiry, decodeBucket(rest[:8])
		e.Tenant, e.ID = string(rest[8:8+i]), string(rest[8+i+1:])
	case prefixSettled:
		// r <tenant> 0 <reservation>
		i := bytes.IndexByte(rest, 0)
		if i <= 0 || i == len(rest)-1 {
			return e
		}
		e.Kind, e.Tenant, e.ID = EntrySettled, string(rest[:i]), string(rest[i+1:])
	case prefixSettledAt:
		// R <tenant> 0 <settled at:8> <reservation>
		i := bytes.IndexByte(rest, 0)
		if i <= 0 || len(rest) < i+1+8+1 {
			return e
		}
		e.Kind, e.Tenant = EntrySettledAt, string(rest[:i])
		e.Int, e.ID = decodeBucket(rest[i+1:i+9]), string(rest[i+9:])
	case prefixCounter:
		k, ok := parseCounterKey(rest)
		if ok && len(value) == 8 {
			e.Kind, e.Tenant, e.Counter, e.Int = EntryCounter, k.Tenant, k, decodeInt(value)
		}
	}
	return e
}

// parseCounterKey inverts counterKey (without its prefix byte):
// <tenant> 0 <quota> 0 <epoch:4> <split> 0 <limit> 0 <bucket:8> <u|r>.
func parseCounterKey(b []byte) (CounterKey, bool) {
	var k CounterKey
	i := bytes.IndexByte(b, 0)
	if i <= 0 {
		return k, false
	}
	k.Tenant, b = string(b[:i]), b[i+1:]
	i = bytes.IndexByte(b, 0)
	if i <= 0 || len(b) < i+1+4+1+1+1+8+1 {
		return k, false
	}
	k.Quota, b = string(b[:i]), b[i+1:]
	k.Epoch, b = binary.BigEndian.Uint32(b[:4]), b[4:]
	n := len(b)
	switch b[n-1] {
	case 'r':
		k.Reserved = true
	case 'u':
	default:
		return k, false
	}
	if b[n-10] != 0 {
		return k, false
	}
	k.Bucket = decodeBucket(b[n-9 : n-1])
	mid := b[:n-10] // <split> 0 <limit>
	i = bytes.IndexByte(mid, 0)
	if i < 0 {
		return k, false
	}
	k.Split, k.Limit = string(mid[:i]), string(mid[i+1:])
	return k, true
}

// CounterKeyBytes returns the store key of a counter (for tools and tests
// that need to address one counter).
func CounterKeyBytes(k CounterKey) []byte { return counterKey(nil, &k) }

// Scan calls fn for every key of the store in key order, all read from one
// consistent snapshot (so the applied sequence matches everything else seen).
// It stops at the first error fn returns.
func (s *Store) Scan(fn func(e *Entry) error) error {
	it, err := s.db.NewIter(nil)
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return err
		}
		e := ParseEntry(it.Key(), v)
		if err := fn(&e); err != nil {
			it.Close()
			return err
		}
	}
	if err := it.Error(); err != nil {
		it.Close()
		return err
	}
	return it.Close()
}
