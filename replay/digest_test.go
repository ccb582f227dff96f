package replay_test

import (
	"bytes"
	"encoding/binary"
	"path/filepath"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/ledgerworks/ledger/projections"
	"github.com/ledgerworks/ledger/replay"
	rt "github.com/ledgerworks/ledger/replay/replaytest"
)

// Maps encoded in different orders and integers of different widths have
// one canonical form.
func TestCanonicalMsgpack(t *testing.T) {
	enc := func(f func(e *msgpack.Encoder) error) []byte {
		var b bytes.Buffer
		e := msgpack.NewEncoder(&b)
		if err := f(e); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	a := enc(func(e *msgpack.Encoder) error {
		e.EncodeMapLen(2)
		e.EncodeString("b")
		e.EncodeInt64(5) // 9 bytes
		e.EncodeString("a")
		e.EncodeMapLen(2)
		e.EncodeString("y")
		e.EncodeArrayLen(1)
		e.EncodeUint64(7)
		e.EncodeString("x")
		return e.EncodeString("s")
	})
	b := enc(func(e *msgpack.Encoder) error {
		e.UseCompactInts(true)
		e.EncodeMapLen(2)
		e.EncodeString("a")
		e.EncodeMapLen(2)
		e.EncodeString("x")
		e.EncodeString("s")
		e.EncodeString("y")
		e.EncodeArrayLen(1)
		e.EncodeInt(7)
		e.EncodeString("b")
		return e.EncodeInt(5)
	})
	if bytes.Equal(a, b) {
		t.Fatal("the inputs should differ")
	}
	ca, err := replay.CanonicalMsgpack(a)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := replay.CanonicalMsgpack(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ca, cb) {
		t.Fatalf("canonical forms differ: %x %x", ca, cb)
	}
	var v map[string]any
	if err := msgpack.Unmarshal(ca, &v); err != nil || v["b"] != int8(5) {
		t.Fatalf("canonical form decodes to %v (%v)", v, err)
	}
}

// A counter that adds up to zero is the same state as no counter: the
// digest does not see it. Any other value does change it.
func TestDigestIgnoresZeroCounters(t *testing.T) {
	s, err := projections.OpenStore(filepath.Join(t.TempDir(), "p"), projections.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	before := rt.Digest(t, s)
	k := projections.CounterKeyBytes(projections.CounterKey{Tenant: "acme", Quota: "q", Split: "ana", Limit: "tokens|sliding:60", Bucket: 120, Reserved: true})
	put := func(n int64) {
		if err := s.DB().Merge(k, binary.BigEndian.AppendUint64(nil, uint64(n)), nil); err != nil {
			t.Fatal(err)
		}
	}
	put(40)
	put(-40)
	if after := rt.Digest(t, s); after.Sum != before.Sum {
		t.Fatalf("a zero counter changed the digest")
	}
	put(1)
	if after := rt.Digest(t, s); after.Sum == before.Sum || after.Entries["counter"] != 1 {
		t.Fatalf("a counter of 1 left the digest unchanged: %+v", after)
	}
	e := projections.ParseEntry(k, binary.BigEndian.AppendUint64(nil, 1))
	if e.Kind != projections.EntryCounter || e.Counter.Tenant != "acme" || e.Counter.Split != "ana" || e.Counter.Bucket != 120 || !e.Counter.Reserved || e.Counter.Limit != "tokens|sliding:60" {
		t.Fatalf("parsed %+v", e)
	}
}

// Expiry entries name their tenant and reservation.
func TestParseExpiryEntry(t *testing.T) {
	at := time.Date(2026, 3, 29, 1, 30, 0, 5, time.UTC)
	key := append([]byte{'x'}, binary.BigEndian.AppendUint64(nil, uint64(at.UnixNano())^(1<<63))...)
	key = append(append(append(key, "acme"...), 0), "r-1"...)
	e := projections.ParseEntry(key, nil)
	if e.Kind != projections.EntryExpiry || e.Tenant != "acme" || e.ID != "r-1" || e.Int != at.UnixNano() {
		t.Fatalf("parsed %+v", e)
	}
}
