package projections

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

func TestSplitKey(t *testing.T) {
	k := CounterKey{Tenant: "acme", Quota: "q", Epoch: 0x00000100, Split: "alice", Limit: "tokens|sliding:60", Bucket: 42}
	prefix := counterPrefix(nil, &k)
	full := counterKey(nil, &k)
	for _, c := range []struct {
		name string
		key  []byte
		want int
	}{
		{"counter", full, len(prefix)},
		{"limit prefix", prefix, len(prefix)},
		{"prefix and bucket", appendBucket(bytes.Clone(prefix), 7), len(prefix)},
		{"cut in the limit", prefix[:len(prefix)-1], len(prefix) - 1},
		{"cut in the epoch", full[:len("cacme\x00q\x00")+2], len("cacme\x00q\x00") + 2},
		{"seen", seenKey(nil, "acme", "e1"), len(seenKey(nil, "acme", "e1"))},
		{"tenant", tenantKey("acme"), len(tenantKey("acme"))},
		{"applied", keyApplied, len(keyApplied)},
		{"empty", nil, 0},
		{"c", []byte{'c'}, 1},
	} {
		if got := splitKey(c.key); got != c.want {
			t.Errorf("%s: splitKey(%q) = %d, want %d", c.name, c.key, got, c.want)
		}
	}
}

// TestSplitKeyOrder checks what Pebble requires of Split over random keys
// made of the bytes that matter (the counter tag, separators, others): a
// prefix sorts before its longer keys, prefixes order keys, and equal
// prefixes leave the order to the suffixes.
func TestSplitKeyOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte{'c', 0, 0, 1, 'a', 0xff}
	key := func() []byte {
		k := []byte{'c'}
		if r.IntN(8) == 0 {
			k[0] = 'd'
		}
		for range r.IntN(16) {
			k = append(k, alphabet[r.IntN(len(alphabet))])
		}
		return k
	}
	keys := make([][]byte, 5000)
	for i := range keys {
		keys[i] = key()
	}
	cmp := keyComparer.Compare
	for i := range 200_000 {
		a, b := keys[r.IntN(len(keys))], keys[r.IntN(len(keys))]
		if i%2 == 0 {
			b = append(bytes.Clone(a), key()[1:]...) // a shared start
		}
		pa, pb := a[:splitKey(a)], b[:splitKey(b)]
		if len(pa) < len(a) && cmp(pa, a) >= 0 {
			t.Fatalf("prefix %q does not sort before %q", pa, a)
		}
		if cmp(a, b) <= 0 && cmp(pa, pb) > 0 {
			t.Fatalf("%q <= %q but prefix %q > %q", a, b, pa, pb)
		}
		if cmp(pa, pb) < 0 && cmp(a, b) >= 0 {
			t.Fatalf("prefix %q < %q but %q >= %q", pa, pb, a, b)
		}
		if cmp(pa, pb) == 0 && cmp(a, b) != bytes.Compare(a[len(pa):], b[len(pb):]) {
			t.Fatalf("equal prefixes %q: %q and %q not ordered by suffix", pa, a, b)
		}
	}
}

// TestOpenStoreOtherComparer: a store written before the limit-prefix
// comparer (Pebble's default) does not open, with an error that says to
// rebuild it, and the directory is left as it was.
func TestOpenStoreOtherComparer(t *testing.T) {
	dir := t.TempDir()
	db, err := pebble.Open(dir, &pebble.Options{Merger: int64Add, FormatMajorVersion: pebble.FormatNewest, Logger: quietLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Set(keyApplied, encodeInt(7), nil); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = OpenStore(dir, StoreOptions{})
	if !errors.Is(err, ErrStoreFormat) || !strings.Contains(err.Error(), "rebuild") {
		t.Fatalf("OpenStore of a default-comparer store: %v", err)
	}
	// Still the old store, readable by what wrote it.
	db, err = pebble.Open(dir, &pebble.Options{Merger: int64Add, Logger: quietLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	v, closer, err := db.Get(keyApplied)
	if err != nil || decodeInt(v) != 7 {
		t.Fatalf("old store after the refused open: %v %v", v, err)
	}
	closer.Close()

	// A store this build wrote opens again.
	dir = t.TempDir()
	if err := openStore(t, dir).Close(); err != nil {
		t.Fatal(err)
	}
	if err := openStore(t, dir).Close(); err != nil {
		t.Fatal(err)
	}
}
