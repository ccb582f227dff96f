package replay_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/projections"
	"github.com/ledgerworks/ledger/replay"
	rt "github.com/ledgerworks/ledger/replay/replaytest"
)

// auditFixture folds a generated history with a live projector, stops it
// and returns its directory and the stream.
func auditFixture(t *testing.T) (*rt.Live, *replay.StreamSource, uint64) {
	t.Helper()
	_, js := rt.Stream(t)
	bs := rt.Generate(rt.GenOptions{Seed: 99, Events: 4_000, Tenants: 5, Start: time.Date(2026, 3, 29, 0, 30, 0, 0, time.UTC), TZ: "Europe/Berlin"})
	lv := rt.StartLive(t, js, "")
	seqs := rt.AppendAll(t, js, bs)
	last := seqs[len(seqs)-1]
	lv.Wait(t, last)
	lv.Stop()
	return lv, rt.Source(t, js), last
}

func audit(t *testing.T, ctx context.Context, src replay.Source, dir string) *replay.AuditResult {
	t.Helper()
	store, err := projections.OpenStore(dir, projections.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	res, err := replay.Audit(ctx, src, store, replay.AuditOptions{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// An untouched projection passes the audit; one counter changed in Pebble
// behind the ledger's back is found, with its account named, and nothing
// else is reported.
func TestAuditFindsAlteredCounter(t *testing.T) {
	ctx := rt.Ctx(t, 60*time.Second)
	lv, src, last := auditFixture(t)

	res := audit(t, ctx, src, lv.Dir)
	if !res.OK() {
		t.Fatalf("untouched projection: %d differences, first %v", len(res.Differences), res.Differences[0])
	}
	if res.LiveApplied != last || res.Stream.ThroughSeq != last || res.Tenants != 5 || res.Live.Sum != res.Recomputed.Sum {
		t.Fatalf("audit read through %d of %d, %d tenants, digests %s %s", res.Stream.ThroughSeq, last, res.Tenants, res.Live.Sum, res.Recomputed.Sum)
	}

	// Change one usage counter of t03 directly in Pebble.
	store, err := projections.OpenStore(lv.Dir, projections.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var key []byte
	var was int64
	err = store.Scan(func(e *projections.Entry) error {
		if e.Kind == projections.EntryCounter && e.Tenant == "t03" && !e.Counter.Reserved && e.Int > 0 {
			key, was = append([]byte{}, e.Key...), e.Int
			return errors.New("found")
		}
		return nil
	})
	if key == nil {
		t.Fatalf("no counter of t03 to alter: %v", err)
	}
	if err := store.DB().Set(key, binary.BigEndian.AppendUint64(nil, uint64(was+7)), nil); err != nil {
		t.Fatal(err)
	}
	store.Close()

	res = audit(t, ctx, src, lv.Dir)
	if res.OK() || len(res.Differences) != 1 {
		t.Fatalf("altered counter: %d differences: %v", len(res.Differences), res.Differences)
	}
	d := res.Differences[0]
	if d.Tenant != "t03" || d.Kind != "counter" || d.Check != "state" || d.Live != itoa(was+7) || d.Recomputed != itoa(was) {
		t.Fatalf("difference %+v, want t03's counter %d found as %d", d, was, was+7)
	}
	if got := res.Accounts(); len(got) != 1 || got[0] != "t03" {
		t.Fatalf("accounts %v", got)
	}
	t.Logf("found: %s", d)
	if res.Live.Sum == res.Recomputed.Sum {
		t.Fatal("digests should differ")
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// The service audit compares every tenant's all-time totals, each at the
// sequence its answer stands at; a tenant whose totals differ is named.
func TestAuditServiceTotals(t *testing.T) {
	ctx := rt.Ctx(t, 60*time.Second)
	lv, src, _ := auditFixture(t)
	store, err := projections.OpenStore(lv.Dir, projections.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	svc := &storeUsage{store: store}
	res, err := replay.AuditService(ctx, src, svc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() || res.Tenants != 5 {
		t.Fatalf("%d tenants, differences %v", res.Tenants, res.Differences)
	}
	svc.skew = "t01"
	res, err = replay.AuditService(ctx, src, svc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.OK() || res.Accounts()[0] != "t01" || len(res.Accounts()) != 1 || res.Differences[0].Key != "metric=tokens" {
		t.Fatalf("skewed t01: %v", res.Differences)
	}
}

// storeUsage answers usage.get from a store, adding one token to the
// tenant skew.
type storeUsage struct {
	store *projections.Store
	skew  string
}

func (s *storeUsage) Usage(_ context.Context, tenant string, _ uint64) (map[events.Metric]int64, uint64, error) {
	tot, err := s.store.Totals(tenant)
	if err != nil {
		return nil, 0, err
	}
	if tenant == s.skew {
		tot[events.MetricTokens]++
	}
	applied, err := s.store.Applied()
	return tot, applied, err
}

// Two readings of the same range give the same chained hash, equal to the
// documented formula computed here by hand; a stream built from the same
// events with one of them changed gives another hash from that event on.
func TestChainedHash(t *testing.T) {
	ctx := rt.Ctx(t, 60*time.Second)
	fixture := rt.BillingFixture()
	js := appendFixture(t)
	src := rt.Source(t, js)
	a, err := replay.HashRange(ctx, src, replay.Range{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := replay.HashRange(ctx, src, replay.Range{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.ChainedSHA256 != b.ChainedSHA256 || a.ThroughSeq != uint64(len(fixture)) {
		t.Fatalf("two readings: %s and %s through %d", a.ChainedSHA256, b.ChainedSHA256, a.ThroughSeq)
	}
	var h [32]byte
	for i, bt := range fixture {
		for j := range bt.Events {
			c, err := bt.Events[j].MarshalMsgpack()
			if err != nil {
				t.Fatal(err)
			}
			hh := sha256.New()
			hh.Write(h[:])
			hh.Write(binary.BigEndian.AppendUint64(nil, uint64(i+1)))
			hh.Write(c)
			hh.Sum(h[:0])
		}
	}
	if a.ChainedSHA256 != hex.EncodeToString(h[:]) {
		t.Fatalf("chained hash %s, by the formula %x", a.ChainedSHA256, h)
	}

	// The same history with one amount changed in message 5.
	altered := rt.BillingFixture()
	altered[4].Events[0].Payload = &events.UsageRecorded{Amounts: events.Amounts{Tokens: 5001, Requests: 1}}
	_, js2 := rt.Stream(t)
	rt.AppendAll(t, js2, altered)
	src2 := rt.Source(t, js2)
	c, err := replay.HashRange(ctx, src2, replay.Range{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.ChainedSHA256 == a.ChainedSHA256 {
		t.Fatal("an altered event left the chained hash unchanged")
	}
	for _, r := range []struct {
		rng  replay.Range
		same bool
	}{
		{replay.Range{From: 1, To: 4}, true},
		{replay.Range{From: 1, To: 5}, false},
		{replay.Range{From: 6, To: 21}, true},
		{replay.Range{From: 5, To: 5}, false},
	} {
		x, err := replay.HashRange(ctx, src, r.rng, nil)
		if err != nil {
			t.Fatal(err)
		}
		y, err := replay.HashRange(ctx, src2, r.rng, nil)
		if err != nil {
			t.Fatal(err)
		}
		if (x.ChainedSHA256 == y.ChainedSHA256) != r.same {
			t.Errorf("range %v: hashes %s and %s, same expected %v", r.rng, x.ChainedSHA256, y.ChainedSHA256, r.same)
		}
	}
}
