package replay

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"sort"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"

	"github.com/ledgerworks/ledger/projections"
)

// Digest is a state digest of a projection at its applied sequence: a
// sha256 over every entry of the store in key order, each normalised so that
// two stores holding the same state digest the same however their batches
// were cut:
//
//   - a counter or total whose value is zero counts as absent (a
//     reservation held and released in one batch writes nothing; across two
//     batches it leaves a zero);
//   - a tenant state is re-encoded as canonical msgpack (map keys sorted,
//     integers in their shortest form), since the store writes Go maps in
//     random order;
//   - every other entry (applied sequence, seen event IDs, keys this code
//     does not know) is taken byte for byte.
//
// Each entry enters as the uvarint length and bytes of its key, then the
// uvarint length and bytes of its normalised value. Per-kind digests say
// where two stores differ.
type Digest struct {
	Sum     string            `json:"digest"`
	Applied uint64            `json:"applied_seq"`
	Entries map[string]int64  `json:"entries"` // per kind
	Kinds   map[string]string `json:"kinds"`   // per-kind sha256
	kinds   map[projections.EntryKind]hash.Hash
}

// String is the one-line form the CLI prints.
func (d *Digest) String() string {
	return fmt.Sprintf("sha256:%s applied_seq=%d", d.Sum, d.Applied)
}

// DigestStore computes the digest of a store. It reads one consistent
// snapshot, so it may run while a projector writes to the store.
func DigestStore(s *projections.Store) (*Digest, error) {
	d := &Digest{Entries: map[string]int64{}, Kinds: map[string]string{}, kinds: map[projections.EntryKind]hash.Hash{}}
	all := sha256.New()
	var buf []byte
	err := s.Scan(func(e *projections.Entry) error {
		v, keep, err := Normalize(e)
		if err != nil {
			return err
		}
		if !keep {
			return nil
		}
		if e.Kind == projections.EntryApplied {
			d.Applied = uint64(e.Int)
		}
		buf = appendEntry(buf[:0], e.Key, v)
		all.Write(buf)
		h := d.kinds[e.Kind]
		if h == nil {
			h = sha256.New()
			d.kinds[e.Kind] = h
		}
		h.Write(buf)
		d.Entries[e.Kind.String()]++
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("digest: %w", err)
	}
	d.Sum = hex.EncodeToString(all.Sum(nil))
	for k, h := range d.kinds {
		d.Kinds[k.String()] = hex.EncodeToString(h.Sum(nil))
	}
	return d, nil
}

func appendEntry(b []byte, key, value []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(key)))
	b = append(b, key...)
	b = binary.AppendUvarint(b, uint64(len(value)))
	return append(b, value...)
}

// Normalize returns the value of an entry as the digest and the audit see
// it, and false when the entry counts as absent (a zero counter or total).
func Normalize(e *projections.Entry) ([]byte, bool, error) {
	switch e.Kind {
	case projections.EntryCounter, projections.EntryTotal:
		return e.Value, e.Int != 0, nil
	case projections.EntryTenant, projections.EntrySettled:
		v, err := CanonicalMsgpack(e.Value)
		if err != nil {
			return nil, false, fmt.Errorf("%s %s %s: %w", e.Kind, e.Tenant, e.ID, err)
		}
		return v, true, nil
	}
	return e.Value, true, nil
}

// CanonicalMsgpack re-encodes msgpack data with map entries sorted by their
// encoded keys and integers in their shortest form, so that equal values
// encode to equal bytes whatever map order and integer widths wrote them.
func CanonicalMsgpack(b []byte) ([]byte, error) {
	dec := msgpack.NewDecoder(bytes.NewReader(b))
	var out bytes.Buffer
	enc := msgpack.NewEncoder(&out)
	enc.UseCompactInts(true)
	enc.UseCompactFloats(true)
	if err := canonical(dec, enc, &out, 0); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

func canonical(dec *msgpack.Decoder, enc *msgpack.Encoder, out *bytes.Buffer, depth int) error {
	if depth > 64 {
		return fmt.Errorf("msgpack nested deeper than 64")
	}
	c, err := dec.PeekCode()
	if err != nil {
		return err
	}
	switch {
	case msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32:
		n, err := dec.DecodeMapLen()
		if err != nil {
			return err
		}
		type kv struct{ k, v []byte }
		entries := make([]kv, n)
		for i := range entries {
			var kb, vb bytes.Buffer
			ke := msgpack.NewEncoder(&kb)
			ke.UseCompactInts(true)
			ke.UseCompactFloats(true)
			if err := canonical(dec, ke, &kb, depth+1); err != nil {
				return err
			}
			ve := msgpack.NewEncoder(&vb)
			ve.UseCompactInts(true)
			ve.UseCompactFloats(true)
			if err := canonical(dec, ve, &vb, depth+1); err != nil {
				return err
			}
			entries[i] = kv{kb.Bytes(), vb.Bytes()}
		}
		sort.Slice(entries, func(i, j int) bool { return bytes.Compare(entries[i].k, entries[j].k) < 0 })
		if err := enc.EncodeMapLen(n); err != nil {
			return err
		}
		for _, e := range entries {
			out.Write(e.k)
			out.Write(e.v)
		}
		return nil
	case msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32:
		n, err := dec.DecodeArrayLen()
		if err != nil {
			return err
		}
		if err := enc.EncodeArrayLen(n); err != nil {
			return err
		}
		for range n {
			if err := canonical(dec, enc, out, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	v, err := dec.DecodeInterface()
	if err != nil {
		return err
	}
	return enc.Encode(v)
}
