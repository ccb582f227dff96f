package mp

import (
	"bytes"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// ref encodes v as the ledger's reference encoder does: sorted map keys,
// compact integers.
func ref(t *testing.T, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	e := msgpack.NewEncoder(&buf)
	e.SetSortMapKeys(true)
	e.UseCompactInts(true)
	if err := e.Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestWritersMatchLibrary: the shared writers write what the library
// writes, for values of every length class.
func TestWritersMatchLibrary(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{0, 1, 2, 13, 15, 16, 40, 300, 70000} {
		m := map[string]string{}
		ss := make([]string, n)
		for i := range n {
			k := strconv.Itoa(r.IntN(1 << 30))
			m[k] = string(bytes.Repeat([]byte{'x'}, r.IntN(300)))
			ss[i] = k
		}
		if got, want := AppendStrMap(nil, m), ref(t, m); !bytes.Equal(got, want) {
			t.Errorf("AppendStrMap of %d entries differs from the library", len(m))
		}
		if got, want := AppendStrs(nil, ss), ref(t, ss); !bytes.Equal(got, want) {
			t.Errorf("AppendStrs of %d strings differs from the library", n)
		}
	}
	for _, v := range []int64{0, 1, 127, 128, 255, 256, 65535, 65536, math.MaxUint32, math.MaxInt64, -1, -32, -33, -128, -129, math.MinInt64} {
		if got, want := AppendInt(nil, v), ref(t, v); !bytes.Equal(got, want) {
			t.Errorf("AppendInt(%d) = %x, library %x", v, got, want)
		}
	}
	for _, at := range []time.Time{time.Unix(0, 0), time.Unix(1e9, 0), time.Unix(1e9, 5), time.Unix(1<<34, 1), time.Unix(-1, 0)} {
		if got, want := AppendTime(nil, at), ref(t, at); !bytes.Equal(got, want) {
			t.Errorf("AppendTime(%v) = %x, library %x", at, got, want)
		}
	}
}

// TestFields: keys are taken in order, each at most once, in the encoder's
// form only.
func TestFields(t *testing.T) {
	keys := KeysOf("a", "b", "c")
	enc := func(kv ...string) []byte {
		b := AppendMapLen(nil, len(kv))
		for _, k := range kv {
			b = append(AppendStr(b, k), True)
		}
		return b
	}
	for _, c := range []struct {
		b    []byte
		want string
		ok   bool
	}{
		{enc(), "", true},
		{enc("a", "c"), "ac", true},
		{enc("a", "b", "c"), "abc", true},
		{enc("b", "a"), "", false},                                  // out of order
		{enc("a", "a"), "", false},                                  // repeated
		{enc("d"), "", false},                                       // unknown
		{enc("a", "b", "c", "d"), "", false},                        // more entries than keys
		{append([]byte{FixMap | 1, Str8, 1, 'a'}, True), "", false}, // not the encoder's form
	} {
		var got []byte
		r := &Reader{B: c.b}
		ok := r.Fields(keys, func(i int) bool {
			got = append(got, "abc"[i])
			v, ok := r.Bool()
			return ok && v
		})
		if ok != c.ok || (ok && (string(got) != c.want || !r.Done())) {
			t.Errorf("Fields(%x) = %q, %v; want %q, %v", c.b, got, ok, c.want, c.ok)
		}
	}
}
