// Package mp writes and reads the msgpack that github.com/vmihailenco/msgpack
// writes for the ledger's hot types, by hand: structs as maps in field
// order, map keys sorted, integers in their shortest form, times as the
// timestamp extension (-1). The writers produce the same bytes as that
// encoder (the callers' tests compare them); the Reader takes only that
// canonical form and reports false on anything else, so that callers can
// hand unusual input to the reflection decoder and keep its behaviour.
package mp

import (
	"encoding/binary"
	"math"
	"sort"
	"time"
)

// Codes.
const (
	Nil      = 0xc0
	False    = 0xc2
	True     = 0xc3
	Float64  = 0xcb
	Uint8    = 0xcc
	Uint16   = 0xcd
	Uint32   = 0xce
	Uint64   = 0xcf
	Int8     = 0xd0
	Int16    = 0xd1
	Int32    = 0xd2
	Int64    = 0xd3
	FixExt4  = 0xd6
	FixExt8  = 0xd7
	Ext8     = 0xc7
	Str8     = 0xd9
	Str16    = 0xda
	Str32    = 0xdb
	Array16  = 0xdc
	Array32  = 0xdd
	Map16    = 0xde
	Map32    = 0xdf
	FixMap   = 0x80
	FixArray = 0x90
	FixStr   = 0xa0
	timeExt  = 0xff // extension -1
)

// AppendMapLen appends a map header.
func AppendMapLen(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, FixMap|byte(n))
	case n <= math.MaxUint16:
		return append(b, Map16, byte(n>>8), byte(n))
	}
	return append(b, Map32, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

// AppendArrayLen appends an array header.
func AppendArrayLen(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, FixArray|byte(n))
	case n <= math.MaxUint16:
		return append(b, Array16, byte(n>>8), byte(n))
	}
	return append(b, Array32, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

// AppendStr appends a string.
func AppendStr(b []byte, s string) []byte {
	switch n := len(s); {
	case n < 32:
		b = append(b, FixStr|byte(n))
	case n < 256:
		b = append(b, Str8, byte(n))
	case n <= math.MaxUint16:
		b = append(b, Str16, byte(n>>8), byte(n))
	default:
		b = append(b, Str32, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, s...)
}

// AppendUint appends n in its shortest form.
func AppendUint(b []byte, n uint64) []byte {
	switch {
	case n <= math.MaxInt8:
		return append(b, byte(n))
	case n <= math.MaxUint8:
		return append(b, Uint8, byte(n))
	case n <= math.MaxUint16:
		return append(b, Uint16, byte(n>>8), byte(n))
	case n <= math.MaxUint32:
		return append(b, Uint32, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return binary.BigEndian.AppendUint64(append(b, Uint64), n)
}

// AppendInt appends n in its shortest form.
func AppendInt(b []byte, n int64) []byte {
	switch {
	case n >= 0:
		return AppendUint(b, uint64(n))
	case n >= -32:
		return append(b, byte(n))
	case n >= math.MinInt8:
		return append(b, Int8, byte(n))
	case n >= math.MinInt16:
		return append(b, Int16, byte(n>>8), byte(n))
	case n >= math.MinInt32:
		return append(b, Int32, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return binary.BigEndian.AppendUint64(append(b, Int64), uint64(n))
}

// AppendBool appends a boolean.
func AppendBool(b []byte, v bool) []byte {
	if v {
		return append(b, True)
	}
	return append(b, False)
}

// AppendFloat64 appends a float64 (always 9 bytes: no compact floats).
func AppendFloat64(b []byte, f float64) []byte {
	return binary.BigEndian.AppendUint64(append(b, Float64), math.Float64bits(f))
}

// AppendTime appends t as the timestamp extension, in its shortest form.
func AppendTime(b []byte, t time.Time) []byte {
	secs := uint64(t.Unix())
	if secs>>34 == 0 {
		data := uint64(t.Nanosecond())<<34 | secs
		if data&0xffffffff00000000 == 0 {
			return binary.BigEndian.AppendUint32(append(b, FixExt4, timeExt), uint32(data))
		}
		return binary.BigEndian.AppendUint64(append(b, FixExt8, timeExt), data)
	}
	b = binary.BigEndian.AppendUint32(append(b, Ext8, 12, timeExt), uint32(t.Nanosecond()))
	return binary.BigEndian.AppendUint64(b, secs)
}

// SortedKeys returns the keys of m sorted, in buf when it is large enough.
func SortedKeys[V any](m map[string]V, buf []string) []string {
	keys := buf[:0]
	for k := range m {
		keys = append(keys, k)
	}
	if len(keys) <= 12 {
		for i := 1; i < len(keys); i++ { // insertion sort: such maps are small
			for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
				keys[j], keys[j-1] = keys[j-1], keys[j]
			}
		}
	} else {
		sort.Strings(keys)
	}
	return keys
}

// AppendStrMap appends a map of strings with its keys sorted, as the
// reflection encoder writes it with SortMapKeys (and as the ledger stores
// every such map, so that equal values are equal bytes).
func AppendStrMap(b []byte, m map[string]string) []byte {
	var buf [12]string
	keys := SortedKeys(m, buf[:])
	b = AppendMapLen(b, len(keys))
	for _, k := range keys {
		b = AppendStr(b, k)
		b = AppendStr(b, m[k])
	}
	return b
}

// AppendStrs appends an array of strings.
func AppendStrs(b []byte, ss []string) []byte {
	b = AppendArrayLen(b, len(ss))
	for _, s := range ss {
		b = AppendStr(b, s)
	}
	return b
}

// Slots is the number of interning slots of a Reader.
const Slots = 24

// Reader reads canonical msgpack. Every method returns false on anything it
// does not expect; the caller then gives up on the whole input.
type Reader struct {
	B   []byte
	Off int
	// The last string read per slot, returned again when the same bytes
	// come back (a batch repeats its tenant and common dimension values).
	intern [Slots]string
}

// Done reports whether every byte was read.
func (r *Reader) Done() bool { return r.Off == len(r.B) }

// Left returns the number of unread bytes.
func (r *Reader) Left() int { return len(r.B) - r.Off }

// Byte reads one byte.
func (r *Reader) Byte() (byte, bool) {
	if r.Off >= len(r.B) {
		return 0, false
	}
	c := r.B[r.Off]
	r.Off++
	return c, true
}

// Peek returns the next byte without reading it.
func (r *Reader) Peek() (byte, bool) {
	if r.Off >= len(r.B) {
		return 0, false
	}
	return r.B[r.Off], true
}

func (r *Reader) n(k int) (uint64, bool) {
	if r.Off+k > len(r.B) {
		return 0, false
	}
	var v uint64
	for _, c := range r.B[r.Off : r.Off+k] {
		v = v<<8 | uint64(c)
	}
	r.Off += k
	return v, true
}

func (r *Reader) length(fix, fixMask byte, c8, c16, c32 byte) (int, bool) {
	c, ok := r.Byte()
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
	if !ok || v > uint64(len(r.B)) {
		return 0, false
	}
	return int(v), true
}

// MapLen reads a map header; n is at most the bytes left (each entry takes
// at least one byte).
func (r *Reader) MapLen() (int, bool) {
	n, ok := r.length(FixMap, 0x0f, 0, Map16, Map32)
	return n, ok && n <= r.Left()
}

// ArrayLen reads an array header; n is at most the bytes left.
func (r *Reader) ArrayLen() (int, bool) {
	n, ok := r.length(FixArray, 0x0f, 0, Array16, Array32)
	return n, ok && n <= r.Left()
}

// StrBytes reads a string without copying it.
func (r *Reader) StrBytes() ([]byte, bool) {
	n, ok := r.length(FixStr, 0x1f, Str8, Str16, Str32)
	if !ok || r.Off+n > len(r.B) {
		return nil, false
	}
	s := r.B[r.Off : r.Off+n]
	r.Off += n
	return s, true
}

// Str reads a string.
func (r *Reader) Str() (string, bool) {
	b, ok := r.StrBytes()
	return string(b), ok
}

// StrIn reads a string, reusing the one last read in slot when equal.
func (r *Reader) StrIn(slot int) (string, bool) {
	b, ok := r.StrBytes()
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

// Key reads a map key and reports whether it is want.
func (r *Reader) Key(want string) bool {
	b, ok := r.StrBytes()
	return ok && string(b) == want
}

// PeekKey returns the next string without reading it.
func (r *Reader) PeekKey() ([]byte, bool) {
	off := r.Off
	b, ok := r.StrBytes()
	r.Off = off
	return b, ok
}

// Int reads any integer that fits an int64.
func (r *Reader) Int() (int64, bool) {
	c, ok := r.Byte()
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
	case Uint8, Int8:
		v, ok = r.n(1)
	case Uint16, Int16:
		v, ok = r.n(2)
	case Uint32, Int32:
		v, ok = r.n(4)
	case Uint64, Int64:
		v, ok = r.n(8)
	default:
		return 0, false
	}
	if !ok {
		return 0, false
	}
	switch c {
	case Int8:
		return int64(int8(v)), true
	case Int16:
		return int64(int16(v)), true
	case Int32:
		return int64(int32(v)), true
	case Int64:
		return int64(v), true
	case Uint64:
		if v > math.MaxInt64 {
			return 0, false
		}
	}
	return int64(v), true
}

// Uint reads a non-negative integer.
func (r *Reader) Uint() (uint64, bool) {
	c, ok := r.Peek()
	if !ok {
		return 0, false
	}
	if c == Uint64 {
		r.Off++
		return r.n(8)
	}
	n, ok := r.Int()
	if !ok || n < 0 {
		return 0, false
	}
	return uint64(n), true
}

// Bool reads a boolean.
func (r *Reader) Bool() (bool, bool) {
	c, ok := r.Byte()
	if !ok || (c != True && c != False) {
		return false, false
	}
	return c == True, true
}

// Float64 reads a float64 written in 9 bytes.
func (r *Reader) Float64() (float64, bool) {
	c, ok := r.Byte()
	if !ok || c != Float64 {
		return 0, false
	}
	v, ok := r.n(8)
	return math.Float64frombits(v), ok
}

// Time reads a timestamp extension as the reflection decoder does: in the
// local zone, UTC for the zero time.
func (r *Reader) Time() (time.Time, bool) {
	c, ok := r.Byte()
	if !ok {
		return time.Time{}, false
	}
	var size int
	switch c {
	case FixExt4:
		size = 4
	case FixExt8:
		size = 8
	case Ext8:
		if size, ok := r.Byte(); !ok || size != 12 {
			return time.Time{}, false
		}
		size = 12
	default:
		return time.Time{}, false
	}
	if t, ok := r.Byte(); !ok || t != timeExt {
		return time.Time{}, false
	}
	var tm time.Time
	switch size {
	case 4:
		v, ok := r.n(4)
		if !ok {
			return time.Time{}, false
		}
		tm = time.Unix(int64(v), 0)
	case 8:
		v, ok := r.n(8)
		if !ok {
			return time.Time{}, false
		}
		tm = time.Unix(int64(v&0x00000003ffffffff), int64(v>>34))
	default:
		nsec, ok1 := r.n(4)
		sec, ok2 := r.n(8)
		if !ok1 || !ok2 {
			return time.Time{}, false
		}
		tm = time.Unix(int64(sec), int64(nsec))
	}
	if tm.IsZero() {
		tm = tm.UTC()
	}
	return tm, true
}

// AppendInt64 appends n in 9 bytes, as the encoder does without compact
// integers.
func AppendInt64(b []byte, n int64) []byte {
	return binary.BigEndian.AppendUint64(append(b, Int64), uint64(n))
}

// AppendUint64 appends n in 9 bytes, as the encoder does without compact
// integers.
func AppendUint64(b []byte, n uint64) []byte {
	return binary.BigEndian.AppendUint64(append(b, Uint64), n)
}

// AppendUint32 appends n in 5 bytes, as the encoder does without compact
// integers.
func AppendUint32(b []byte, n uint32) []byte {
	return binary.BigEndian.AppendUint32(append(b, Uint32), n)
}

// Keys holds the field names of a map, in encoding order, each as the bytes
// the encoder writes for it (a msgpack fixstr: its header and the name), so
// that a key is recognised with one comparison of the input rather than by
// reading a string and then comparing it.
type Keys []string

// KeysOf returns the Keys of names.
func KeysOf(names ...string) Keys {
	ks := make(Keys, len(names))
	for i, n := range names {
		ks[i] = string(AppendStr(nil, n))
	}
	return ks
}

// Field reads the next key of a map whose keys must come in the order of
// keys, each at most once, and returns its index; *next is where the
// following key's search starts. A plain loop over the keys with this,
// rather than a callback per field, keeps the decoders free of indirect
// calls. A key written in any other form than the encoder's is refused.
func (r *Reader) Field(keys Keys, next *int) (int, bool) {
	rest := r.B[r.Off:]
	for i := *next; i < len(keys); i++ {
		if k := keys[i]; len(rest) >= len(k) && string(rest[:len(k)]) == k {
			r.Off += len(k)
			*next = i + 1
			return i, true
		}
	}
	return 0, false // unknown, repeated or out of order
}

// MapOf reads a map header of at most max entries.
func (r *Reader) MapOf(max int) (int, bool) {
	n, ok := r.MapLen()
	return n, ok && n <= max
}

// Fields reads a map whose keys must come in the order of keys, each at most
// once (Field), calling field with the index of each key; the value is
// field's to read. Any other key, or field returning false, refuses the
// input.
func (r *Reader) Fields(keys Keys, field func(i int) bool) bool {
	n, ok := r.MapOf(len(keys))
	if !ok {
		return false
	}
	next := 0
	for range n {
		i, ok := r.Field(keys, &next)
		if !ok || !field(i) {
			return false
		}
	}
	return true
}
