package events

import (
	"fmt"
	"math"
	"sort"
	"time"
)

func encodeError(t Type, err error) error { return fmt.Errorf("encode %s payload: %w", t, err) }

// A hand-written msgpack codec for the hot paths: the envelope of every
// event and the payload of usage.recorded.v1, which producers encode and the
// projector decodes for every usage event.
//
// It writes exactly the bytes the reflection encoder writes (struct fields as
// a map in declaration order, omitempty fields left out, map keys sorted,
// integers in their shortest form), so the stored format does not change;
// the golden files and a differential test against the reflection codec
// prove it. The decoder accepts only that canonical form, field by field in
// declaration order; on anything else (another key order, unknown keys,
// other integer or string codes, nil where a value was expected, an unknown
// type, a payload type without a fast decoder) it gives up and the
// reflection decoder decides, so every error and every unusual input is
// handled as before.

// msgpack codes.
const (
	mpNil      = 0xc0
	mpFalse    = 0xc2
	mpTrue     = 0xc3
	mpUint8    = 0xcc
	mpUint16   = 0xcd
	mpUint32   = 0xce
	mpUint64   = 0xcf
	mpInt8     = 0xd0
	mpInt16    = 0xd1
	mpInt32    = 0xd2
	mpInt64    = 0xd3
	mpStr8     = 0xd9
	mpStr16    = 0xda
	mpStr32    = 0xdb
	mpArray16  = 0xdc
	mpArray32  = 0xdd
	mpMap16    = 0xde
	mpMap32    = 0xdf
	mpFixMap   = 0x80
	mpFixArray = 0x90
	mpFixStr   = 0xa0
)

func appendMapLen(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, mpFixMap|byte(n))
	case n <= math.MaxUint16:
		return append(b, mpMap16, byte(n>>8), byte(n))
	}
	return append(b, mpMap32, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func appendArrayLen(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, mpFixArray|byte(n))
	case n <= math.MaxUint16:
		return append(b, mpArray16, byte(n>>8), byte(n))
	}
	return append(b, mpArray32, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func appendStr(b []byte, s string) []byte {
	switch n := len(s); {
	case n < 32:
		b = append(b, mpFixStr|byte(n))
	case n < 256:
		b = append(b, mpStr8, byte(n))
	case n <= math.MaxUint16:
		b = append(b, mpStr16, byte(n>>8), byte(n))
	default:
		b = append(b, mpStr32, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, s...)
}

func appendUint(b []byte, n uint64) []byte {
	switch {
	case n <= math.MaxInt8:
		return append(b, byte(n))
	case n <= math.MaxUint8:
		return append(b, mpUint8, byte(n))
	case n <= math.MaxUint16:
		return append(b, mpUint16, byte(n>>8), byte(n))
	case n <= math.MaxUint32:
		return append(b, mpUint32, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, mpUint64, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

// appendInt writes n in its shortest form, as the encoder with compact
// integers does.
func appendInt(b []byte, n int64) []byte {
	switch {
	case n >= 0:
		return appendUint(b, uint64(n))
	case n >= -32:
		return append(b, byte(n))
	case n >= math.MinInt8:
		return append(b, mpInt8, byte(n))
	case n >= math.MinInt16:
		return append(b, mpInt16, byte(n>>8), byte(n))
	case n >= math.MinInt32:
		return append(b, mpInt32, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	u := uint64(n)
	return append(b, mpInt64, byte(u>>56), byte(u>>48), byte(u>>40), byte(u>>32), byte(u>>24), byte(u>>16), byte(u>>8), byte(u))
}

// sortedKeys returns the keys of m sorted, in buf when it is large enough.
func sortedKeys[V any](m map[string]V, buf []string) []string {
	keys := buf[:0]
	for k := range m {
		keys = append(keys, k)
	}
	if len(keys) <= 12 {
		for i := 1; i < len(keys); i++ { // insertion sort: dimensions are few
			for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
				keys[j], keys[j-1] = keys[j-1], keys[j]
			}
		}
	} else {
		sort.Strings(keys)
	}
	return keys
}

// appendEvent appends the canonical encoding of e.
func appendEvent(b []byte, e *Event) ([]byte, error) {
	if e.Payload == nil {
		return nil, invalid("data", "missing payload")
	}
	n := 6
	if len(e.Dims) > 0 {
		n++
	}
	if len(e.Groups) > 0 {
		n++
	}
	b = appendMapLen(b, n)
	b = append(b, mpFixStr|1, 'v', Version)
	b = append(b, mpFixStr|2, 'i', 'd')
	b = appendStr(b, e.ID)
	b = append(b, mpFixStr|4, 't', 'y', 'p', 'e')
	b = appendStr(b, string(e.Type))
	b = append(b, mpFixStr|6, 't', 'e', 'n', 'a', 'n', 't')
	b = appendStr(b, e.Tenant)
	if len(e.Dims) > 0 {
		b = append(b, mpFixStr|4, 'd', 'i', 'm', 's')
		var buf [12]string
		keys := sortedKeys(e.Dims, buf[:])
		b = appendMapLen(b, len(keys))
		for _, k := range keys {
			b = appendStr(b, k)
			b = appendStr(b, e.Dims[k])
		}
	}
	if len(e.Groups) > 0 {
		b = append(b, mpFixStr|6, 'g', 'r', 'o', 'u', 'p', 's')
		b = appendArrayLen(b, len(e.Groups))
		for _, g := range e.Groups {
			b = appendStr(b, g)
		}
	}
	b = append(b, mpFixStr|4, 't', 'i', 'm', 'e')
	b = appendInt(b, e.Time.UnixNano())
	b = append(b, mpFixStr|4, 'd', 'a', 't', 'a')
	switch p := e.Payload.(type) {
	case *UsageRecorded:
		return appendUsageRecorded(b, p), nil
	}
	data, err := marshalMsgpack(e.Payload)
	if err != nil {
		return nil, encodeError(e.Type, err)
	}
	if len(data) == 0 {
		return append(b, mpNil), nil // what an empty RawMessage encodes to
	}
	return append(b, data...), nil
}

// Field names of Amounts (and UsageRecorded, which embeds it) in declaration
// order: the order of the encoding.
var usageFields = [...]string{"tokens", "input_tokens", "output_tokens", "requests", "cost", "actions", "decided"}

func appendUsageRecorded(b []byte, p *UsageRecorded) []byte {
	a := &p.Amounts
	ints := [5]int64{a.Tokens, a.InputTokens, a.OutputTokens, a.Requests, a.Cost}
	n := 0
	for _, v := range ints {
		if v != 0 {
			n++
		}
	}
	if len(a.Actions) > 0 {
		n++
	}
	if p.Decided {
		n++
	}
	b = appendMapLen(b, n)
	for i, v := range ints {
		if v != 0 {
			b = appendStr(b, usageFields[i])
			b = appendInt(b, v)
		}
	}
	if len(a.Actions) > 0 {
		b = appendStr(b, usageFields[5])
		var buf [12]string
		keys := sortedKeys(a.Actions, buf[:])
		b = appendMapLen(b, len(keys))
		for _, k := range keys {
			b = appendStr(b, k)
			b = appendInt(b, a.Actions[k])
		}
	}
	if p.Decided {
		b = appendStr(b, usageFields[6])
		b = append(b, mpTrue)
	}
	return b
}

// mpReader reads canonical msgpack; every method returns false on anything
// it does not expect, and the caller then gives up.
type mpReader struct {
	b   []byte
	off int
	// The last strings decoded per slot, reused when the same bytes come
	// again: a batch repeats its tenant, and its events' dimension names and
	// common values at the same positions.
	intern [slots]string
}

func (r *mpReader) byte() (byte, bool) {
	if r.off >= len(r.b) {
		return 0, false
	}
	c := r.b[r.off]
	r.off++
	return c, true
}

func (r *mpReader) n(k int) (uint64, bool) {
	if r.off+k > len(r.b) {
		return 0, false
	}
	var v uint64
	for _, c := range r.b[r.off : r.off+k] {
		v = v<<8 | uint64(c)
	}
	r.off += k
	return v, true
}

// length reads a map, array or string header of the given family.
func (r *mpReader) length(fix, fixMask byte, c8, c16, c32 byte) (int, bool) {
	c, ok := r.byte()
	if !ok {
		return 0, false
	}
	var v uint64
	switch {
	case c&^fixMask == fix:
		return int(c & fixMask), true
	case c == c8 && c8 != 0:
		v, ok = r.n(1)
	case c == c16:
		v, ok = r.n(2)
	case c == c32:
		v, ok = r.n(4)
	default:
		return 0, false
	}
	if !ok || v > uint64(len(r.b)) {
		return 0, false
	}
	return int(v), true
}

func (r *mpReader) mapLen() (int, bool)   { return r.length(mpFixMap, 0x0f, 0, mpMap16, mpMap32) }
func (r *mpReader) arrayLen() (int, bool) { return r.length(mpFixArray, 0x0f, 0, mpArray16, mpArray32) }

// strBytes returns the bytes of a string, without copying.
func (r *mpReader) strBytes() ([]byte, bool) {
	n, ok := r.length(mpFixStr, 0x1f, mpStr8, mpStr16, mpStr32)
	if !ok || r.off+n > len(r.b) {
		return nil, false
	}
	s := r.b[r.off : r.off+n]
	r.off += n
	return s, true
}

// str returns a string, reusing the one last returned for slot when equal.
func (r *mpReader) str(slot int) (string, bool) {
	b, ok := r.strBytes()
	if !ok {
		return "", false
	}
	if r.intern[slot] == string(b) {
		return r.intern[slot], true
	}
	s := string(b)
	r.intern[slot] = s
	return s, true
}

// key reads a map key and reports whether it is want.
func (r *mpReader) key(want string) bool {
	b, ok := r.strBytes()
	return ok && string(b) == want
}

// peekKey returns the next map key without consuming it.
func (r *mpReader) peekKey() ([]byte, bool) {
	off := r.off
	b, ok := r.strBytes()
	r.off = off
	return b, ok
}

// int reads any msgpack integer that fits an int64.
func (r *mpReader) int() (int64, bool) {
	c, ok := r.byte()
	if !ok {
		return 0, false
	}
	switch {
	case c <= 0x7f:
		return int64(c), true
	case c >= 0xe0:
		return int64(int8(c)), true
	}
	var v uint64
	switch c {
	case mpUint8, mpInt8:
		v, ok = r.n(1)
	case mpUint16, mpInt16:
		v, ok = r.n(2)
	case mpUint32, mpInt32:
		v, ok = r.n(4)
	case mpUint64, mpInt64:
		v, ok = r.n(8)
	default:
		return 0, false
	}
	if !ok {
		return 0, false
	}
	switch c {
	case mpInt8:
		return int64(int8(v)), true
	case mpInt16:
		return int64(int16(v)), true
	case mpInt32:
		return int64(int32(v)), true
	case mpInt64:
		return int64(v), true
	case mpUint64:
		if v > math.MaxInt64 {
			return 0, false
		}
	}
	return int64(v), true
}

// fastDecodeBatch decodes a canonical msgpack batch; ok is false for
// anything else.
func fastDecodeBatch(b []byte) ([]Event, bool) {
	r := &mpReader{b: b}
	n, ok := r.arrayLen()
	if !ok || n > MaxBatchEvents || n > len(b) {
		return nil, false
	}
	evs := make([]Event, n)
	for i := range evs {
		if !r.event(&evs[i]) {
			return nil, false
		}
	}
	if r.off != len(b) {
		return nil, false
	}
	return evs, true
}

// fastDecodeEvent decodes one canonical event; ok is false for anything else.
func fastDecodeEvent(b []byte) (Event, bool) {
	r := &mpReader{b: b}
	var e Event
	if !r.event(&e) || r.off != len(b) {
		return Event{}, false
	}
	return e, true
}

// Interning slots of mpReader: the tenant, then a name and a value slot for
// each of the first maxInternDims dimensions, then the groups.
const (
	slotTenant    = 0
	maxInternDims = 8
	slotDims      = 1
	slotGroup     = slotDims + 2*maxInternDims
	slots         = slotGroup + 1
)

func dimSlots(j int) (name, value int) {
	j = min(j, maxInternDims-1)
	return slotDims + 2*j, slotDims + 2*j + 1
}

func (r *mpReader) event(e *Event) bool {
	n, ok := r.mapLen()
	if !ok || n < 6 || n > 8 {
		return false
	}
	if !r.key("v") {
		return false
	}
	if v, ok := r.byte(); !ok || v != Version {
		return false
	}
	if !r.key("id") {
		return false
	}
	id, ok := r.strBytes()
	if !ok {
		return false
	}
	e.ID = string(id)
	if !r.key("type") {
		return false
	}
	tb, ok := r.strBytes()
	if !ok {
		return false
	}
	switch Type(tb) {
	case TypeUsageRecorded:
		e.Type = TypeUsageRecorded
	default:
		return false // other types go through the reflection decoder
	}
	if !r.key("tenant") {
		return false
	}
	if e.Tenant, ok = r.str(slotTenant); !ok {
		return false
	}
	rest := n - 4
	if k, ok := r.peekKey(); ok && string(k) == "dims" {
		r.key("dims")
		m, ok := r.mapLen()
		if !ok || m == 0 || m > len(r.b)-r.off {
			return false
		}
		e.Dims = make(Dimensions, m)
		prev := ""
		for j := range m {
			ks, vs := dimSlots(j)
			k, ok := r.str(ks)
			if !ok || (j > 0 && k <= prev) {
				return false // canonical maps are sorted, without duplicates
			}
			v, ok := r.str(vs)
			if !ok {
				return false
			}
			e.Dims[k] = v
			prev = k
		}
		rest--
	}
	if k, ok := r.peekKey(); ok && string(k) == "groups" {
		r.key("groups")
		m, ok := r.arrayLen()
		if !ok || m == 0 || m > len(r.b)-r.off {
			return false
		}
		e.Groups = make([]string, m)
		for j := range e.Groups {
			if e.Groups[j], ok = r.str(slotGroup); !ok {
				return false
			}
		}
		rest--
	}
	if rest != 2 || !r.key("time") {
		return false
	}
	ns, ok := r.int()
	if !ok {
		return false
	}
	e.Time = time.Unix(0, ns).UTC()
	if !r.key("data") {
		return false
	}
	p := new(UsageRecorded)
	if !r.usageRecorded(p) {
		return false
	}
	e.Payload = p
	return true
}

func (r *mpReader) usageRecorded(p *UsageRecorded) bool {
	n, ok := r.mapLen()
	if !ok || n > len(usageFields) {
		return false
	}
	next := 0 // fields come in declaration order
	for range n {
		k, ok := r.strBytes()
		if !ok {
			return false
		}
		i := next
		for i < len(usageFields) && usageFields[i] != string(k) {
			i++
		}
		if i == len(usageFields) {
			return false // unknown, repeated or out of order
		}
		next = i + 1
		switch i {
		case 5:
			m, ok := r.mapLen()
			if !ok || m == 0 || m > len(r.b)-r.off {
				return false
			}
			p.Actions = make(Counts, m)
			prev := ""
			for j := range m {
				k, ok := r.strBytes()
				if !ok || (j > 0 && string(k) <= prev) {
					return false
				}
				v, ok := r.int()
				if !ok {
					return false
				}
				prev = string(k)
				p.Actions[prev] = v
			}
		case 6:
			c, ok := r.byte()
			if !ok || (c != mpTrue && c != mpFalse) {
				return false
			}
			p.Decided = c == mpTrue
		default:
			v, ok := r.int()
			if !ok {
				return false
			}
			switch i {
			case 0:
				p.Tokens = v
			case 1:
				p.InputTokens = v
			case 2:
				p.OutputTokens = v
			case 3:
				p.Requests = v
			case 4:
				p.Cost = v
			}
		}
	}
	return true
}
