package projections

import (
	"encoding/binary"

	"github.com/ledgerworks/ledger/events"
)

// Key layout. Integers are big-endian (bucket starts with the sign bit
// flipped), so that iteration order is time order. Names are separated by
// 0x00, which validation keeps out of every name.
//
//	m applied                                   -> uint64 last applied stream sequence
//	s <tenant>                                  -> msgpack Tenant
//	c <tenant> 0 <quota> 0 <epoch:4> <split> 0 <limit> 0 <bucket:8> <u|r> -> int64
//	t <tenant> 0 <metric>                       -> int64 all-time total
//	d <tenant> 0 <event id>                     -> uint64 sequence that applied it
//	x <expires at:8> <tenant> 0 <reservation>   -> empty: open reservations by expiry
//	r <tenant> 0 <reservation>                  -> msgpack ClosedReservation: a settled reservation
//	R <tenant> 0 <settled at:8> <reservation>   -> empty: settled reservations by time, to forget them
const (
	prefixMeta      = 'm'
	prefixTenant    = 's'
	prefixCounter   = 'c'
	prefixTotal     = 't'
	prefixSeen      = 'd'
	prefixExpiry    = 'x'
	prefixSettled   = 'r'
	prefixSettledAt = 'R'
)

var keyApplied = []byte{prefixMeta, 'a', 'p', 'p', 'l', 'i', 'e', 'd'}

func tenantKey(tenant string) []byte {
	return append([]byte{prefixTenant}, tenant...)
}

// counterPrefix is the key of a limit's counters up to the bucket.
func counterPrefix(dst []byte, k *CounterKey) []byte {
	dst = append(dst, prefixCounter)
	dst = append(dst, k.Tenant...)
	dst = append(dst, 0)
	dst = append(dst, k.Quota...)
	dst = append(dst, 0)
	dst = binary.BigEndian.AppendUint32(dst, k.Epoch)
	dst = append(dst, k.Split...)
	dst = append(dst, 0)
	dst = append(dst, k.Limit...)
	dst = append(dst, 0)
	return dst
}

func appendBucket(dst []byte, b int64) []byte {
	return binary.BigEndian.AppendUint64(dst, uint64(b)^(1<<63))
}

func counterKey(dst []byte, k *CounterKey) []byte {
	dst = counterPrefix(dst, k)
	dst = appendBucket(dst, k.Bucket)
	if k.Reserved {
		return append(dst, 'r')
	}
	return append(dst, 'u')
}

func totalKey(tenant string, m events.Metric) []byte {
	b := make([]byte, 0, 2+len(tenant)+len(m))
	b = append(b, prefixTotal)
	b = append(b, tenant...)
	b = append(b, 0)
	return append(b, m...)
}

func seenKey(dst []byte, tenant, id string) []byte {
	dst = append(dst, prefixSeen)
	dst = append(dst, tenant...)
	dst = append(dst, 0)
	return append(dst, id...)
}

func encodeInt(n int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(n)) }

func decodeInt(b []byte) int64 {
	if len(b) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(b))
}
