package projections

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/ledgerworks/ledger/events"
)

// A counter the store cannot read is not zero usage: a view of it fails with
// unavailable instead of answering that everything is allowed, with the
// counter cache on (a miss) and off.
func TestUnreadableCountersAreUnavailable(t *testing.T) {
	for _, cacheEntries := range []int{-1, 0} {
		failReads := &errorfs.Toggle{Injector: errorfs.InjectorFunc(func(op errorfs.Op) error {
			if (op.Kind == errorfs.OpFileReadAt || op.Kind == errorfs.OpFileRead) && strings.HasSuffix(op.Path, ".sst") {
				return errorfs.ErrInjected
			}
			return nil
		})}
		s, err := OpenStore(t.TempDir(), StoreOptions{FS: errorfs.Wrap(vfs.Default, failReads), CounterCacheEntries: cacheEntries, CacheBytes: 1 << 20, MemTableBytes: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		p, err := NewProjector(nil, s, ProjectorOptions{})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		q := events.Quota{ID: "daily", Split: []string{"user"}, Limits: []events.Limit{limitOf(events.MetricTokens, 1000, calendarW(events.UnitDay, "UTC"))}}
		ann := events.Dimensions{"user": "ann"}
		stream := []events.Event{
			events.New("q", "acme", now, nil, &events.QuotaSet{Quota: q}),
			events.New("u1", "acme", now, ann, &events.UsageRecorded{Amounts: events.Amounts{Tokens: 900}}),
		}
		for i := range stream {
			data, err := events.EncodeBatch(stream[i : i+1])
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Apply([]Message{{Seq: uint64(i + 1), Subject: events.Subject("acme", events.ClassOf(stream[i].Type)), Data: data}}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.DB().Flush(); err != nil { // the counters now live in a table file only
			t.Fatal(err)
		}
		used := func() (int64, error) {
			var n int64
			err := p.View("acme", func(tn *Tenant, c Counters, _ uint64) error {
				for _, st := range Statuses(tn, c, Call{Dims: ann, Request: events.Amounts{Tokens: 50}}, now) {
					n += st.Used
				}
				return nil
			})
			return n, err
		}
		failReads.On()
		n, err := used()
		var e *events.Error
		if !errors.As(err, &e) || e.Code != events.CodeUnavailable {
			t.Fatalf("counter cache %d: a failing read answered used=%d, err=%v; want an unavailable error", cacheEntries, n, err)
		}
		failReads.Off()
		if n, err := used(); err != nil || n != 900 {
			t.Fatalf("counter cache %d: once reads work again: used=%d, err=%v; want 900", cacheEntries, n, err)
		}
	}
}
