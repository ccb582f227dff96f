package projections

import (
	"strconv"
	"testing"
	"time"
)

// The seen filter never changes an answer of Store.Seen: IDs written before
// a reopen are found once the filter is built from Pebble, IDs written after
// are found at once, and new IDs are told apart without Pebble.
func TestSeenFilter(t *testing.T) {
	dir := t.TempDir()
	opts := StoreOptions{CacheBytes: 8 << 20, MemTableBytes: 4 << 20, SeenFilterBytes: 1 << 16}
	s, err := OpenStore(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	write := func(s *Store, from, to int, seq uint64) {
		t.Helper()
		var ids []SeenID
		for i := from; i < to; i++ {
			ids = append(ids, SeenID{Tenant: "t" + strconv.Itoa(i%3), ID: "id-" + strconv.Itoa(i), Seq: seq})
		}
		if err := s.Write(&Commit{Seen: ids, Applied: seq}); err != nil {
			t.Fatal(err)
		}
	}
	write(s, 0, 5000, 1)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = OpenStore(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	write(s, 5000, 6000, 2) // perhaps while the filter is being built
	waitBuilt(t, s.seen)
	write(s, 6000, 7000, 3)
	for i := range 7000 {
		tenant, id := "t"+strconv.Itoa(i%3), "id-"+strconv.Itoa(i)
		if ok, err := s.Seen(tenant, id); err != nil || !ok {
			t.Fatalf("%s/%s: seen %v (%v), want true", tenant, id, ok, err)
		}
		if ok, err := s.Seen("t"+strconv.Itoa((i+1)%3), id); err != nil || ok {
			t.Fatalf("%s under another tenant: seen %v (%v), want false", id, ok, err)
		}
	}
	fresh := 0
	for i := 7000; i < 17000; i++ {
		if ok, err := s.Seen("t0", "id-"+strconv.Itoa(i)); err != nil || ok {
			t.Fatalf("new id %d: seen %v (%v)", i, ok, err)
		}
		if !s.seen.mayContain("t0", "id-"+strconv.Itoa(i)) {
			fresh++
		}
	}
	if fresh < 9000 {
		t.Errorf("the filter spared Pebble for %d of 10000 new IDs, want most", fresh)
	}
}

// waitBuilt waits, for 10 s at most, until a filter's build from the store
// has ended, and fails unless it made the filter ready.
func waitBuilt(t *testing.T, f *seenFilter) {
	t.Helper()
	select {
	case <-f.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the filter was not built within 10 s")
	}
	if !f.ready.Load() {
		t.Fatal("the filter's build ended without making it ready")
	}
}
