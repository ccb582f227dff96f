package projections

import (
	"context"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/ledgerworks/ledger/events"
)

// benchTenant returns a tenant with three quotas matching every call of
// user u<n>: a sliding minute of tokens per user, a calendar day of tokens
// in zone tz, and seed 001's rolling hour of requests per user.
func benchTenant(b *testing.B, tz string) *Tenant {
	b.Helper()
	t := NewTenant("acme")
	t0 := time.Date(2024, 6, 14, 12, 0, 0, 0, time.UTC)
	for i, q := range []events.Quota{
		{ID: "per-user-minute", Split: []string{"user"}, Limits: []events.Limit{limitOf(events.MetricTokens, 100000, slidingW(60))}},
		{ID: "daily", Costs: seed003Costs, Limits: []events.Limit{limitOf(events.MetricTokens, 1e9, calendarW(events.UnitDay, tz))}},
		{ID: "rolling", Split: []string{"user"}, Limits: []events.Limit{limitOf(events.MetricRequests, 1000, rollingW(3600))}},
	} {
		ev := events.New("q"+strconv.Itoa(i), "acme", t0, nil, &events.QuotaSet{Quota: q})
		Evolve(t, &ev, Meta{}, NewDeltas())
	}
	return t
}

func usageEvent(i int, at time.Time) events.Event {
	return events.New("e"+strconv.Itoa(i), "acme", at, events.Dimensions{"user": "u" + strconv.Itoa(i%100), "operation": "embedding"},
		&events.UsageRecorded{Amounts: events.Amounts{Tokens: 100, Requests: 1}})
}

// BenchmarkEvolveUsage folds one usage event against three matching quotas.
// With a time zone every calendar limit loads its zone: compare utc and tz.
func BenchmarkEvolveUsage(b *testing.B) {
	for _, tz := range []string{"", "America/New_York"} {
		name := "utc"
		if tz != "" {
			name = "tz"
		}
		b.Run(name, func(b *testing.B) {
			t := benchTenant(b, tz)
			t0 := time.Date(2024, 6, 14, 12, 0, 0, 0, time.UTC)
			evs := make([]events.Event, 1024)
			for i := range evs {
				evs[i] = usageEvent(i, t0.Add(time.Duration(i)*time.Millisecond))
			}
			d := NewDeltas()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ev := &evs[i%len(evs)]
				Evolve(t, ev, Meta{Seq: uint64(i + 1)}, d)
				if len(d.Counters) > 4096 {
					clear(d.Counters)
				}
			}
		})
	}
}

// BenchmarkStoreWrite writes the aggregated deltas of 1000 usage events (100
// users, three quotas) with the tenant state, the seen IDs and the applied
// sequence, as one commit.
func BenchmarkStoreWrite(b *testing.B) {
	s := newStore(b)
	t := benchTenant(b, "")
	t0 := time.Date(2024, 6, 14, 12, 0, 0, 0, time.UTC)
	const n = 1000
	d := NewDeltas()
	seen := make([]SeenID, n)
	for i := 0; i < n; i++ {
		ev := usageEvent(i, t0.Add(time.Duration(i)*50*time.Millisecond))
		Evolve(t, &ev, Meta{Seq: uint64(i + 1)}, d)
		seen[i] = SeenID{Tenant: "acme", ID: ev.ID, Seq: uint64(i + 1)}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range seen {
			seen[j].ID = "e" + strconv.Itoa(i*n+j) // fresh IDs, as in a real stream
		}
		if err := s.Write(&Commit{Deltas: d, Tenants: []*Tenant{t}, Seen: seen, Applied: uint64(i + 1)}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)*n/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkStoreSum sums a one-hour sliding window: 60 one-minute buckets,
// each written by 10 commits (so 10 merge operands per key until a flush).
func BenchmarkStoreSum(b *testing.B) {
	for _, flushed := range []bool{false, true} {
		name := "memtable"
		if flushed {
			name = "flushed"
		}
		b.Run(name, func(b *testing.B) {
			s := newStore(b)
			w := slidingW(3600)
			now := time.Date(2024, 6, 14, 12, 0, 0, 0, time.UTC)
			k := CounterKey{Tenant: "acme", Quota: "q", Split: "u1", Limit: "tokens|sliding:3600"}
			for round := 0; round < 10; round++ {
				d := NewDeltas()
				for m := 0; m < 60; m++ {
					k.Bucket = Bucket(w, now.Add(-time.Duration(m)*time.Minute))
					d.add(k, 7)
					// A neighbour limit, so the scan has bounds to respect.
					o := k
					o.Split = "u2"
					d.add(o, 1)
				}
				if err := s.Write(&Commit{Deltas: d, Applied: uint64(round + 1)}); err != nil {
					b.Fatal(err)
				}
			}
			if flushed {
				if err := s.DB().Flush(); err != nil {
					b.Fatal(err)
				}
			}
			sp := SpanAt(w, now)
			if used, _, _ := s.Sum(k, sp.From, sp.To); used != 60*70 {
				b.Fatalf("sum %d, want %d", used, 60*70)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				s.Sum(k, sp.From, sp.To)
			}
		})
	}
}

// BenchmarkStatuses checks a call against three matching quotas, with the
// counters in a store.
func BenchmarkStatuses(b *testing.B) {
	s := newStore(b)
	t := benchTenant(b, "America/New_York")
	t0 := time.Date(2024, 6, 14, 12, 0, 0, 0, time.UTC)
	d := NewDeltas()
	for i := 0; i < 5000; i++ {
		ev := usageEvent(i, t0.Add(time.Duration(i)*10*time.Millisecond))
		Evolve(t, &ev, Meta{Seq: uint64(i + 1)}, d)
	}
	if err := s.Write(&Commit{Deltas: d, Tenants: []*Tenant{t}, Applied: 1}); err != nil {
		b.Fatal(err)
	}
	call := Call{Dims: events.Dimensions{"user": "u7", "operation": "embedding"}, Request: events.Amounts{Tokens: 100, Requests: 1}}
	now := t0.Add(55 * time.Second)
	if sts := Statuses(t, s, call, now); len(sts) != 3 || sts[0].Used == 0 {
		b.Fatalf("statuses %+v", sts)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		Statuses(t, s, call, now)
	}
}

// BenchmarkStoreSumMiss sums the two limits of random accounts among
// 1,000,000, each with one bucket in a daily and a one-minute limit, so that
// (almost) every sum misses the counter cache and reads Pebble: the check's
// cost at scale.
func BenchmarkStoreSumMiss(b *testing.B) {
	const accounts = 1_000_000
	s := openStore(b, b.TempDir())
	b.Cleanup(func() { s.Close() })
	now := time.Date(2024, 6, 14, 12, 0, 0, 0, time.UTC)
	day, minute := calendarW(events.UnitDay, "UTC"), slidingW(60)
	key := func(i int, w events.Window, limit string) CounterKey {
		return CounterKey{Tenant: "t" + strconv.Itoa(i%16), Quota: "bench", Split: "u" + strconv.Itoa(i), Limit: limit, Bucket: Bucket(w, now)}
	}
	for start := 0; start < accounts; start += 20_000 {
		d := NewDeltas()
		for i := start; i < start+20_000; i++ {
			d.add(key(i, day, "tokens|calendar:day@UTC"), 100)
			d.add(key(i, minute, "requests|sliding:60"), 1)
		}
		if err := s.Write(&Commit{Deltas: d, Applied: uint64(start + 1)}); err != nil {
			b.Fatal(err)
		}
	}
	// Settle the tree, so compactions do not run during the timed loop.
	if err := s.DB().Compact(context.Background(), []byte{0}, []byte{0xff}, true); err != nil {
		b.Fatal(err)
	}
	daySpan, minuteSpan := SpanAt(day, now), SpanAt(minute, now)
	r := rand.New(rand.NewPCG(1, 2))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		i := r.IntN(accounts)
		if used, _, _ := s.Sum(key(i, day, "tokens|calendar:day@UTC"), daySpan.From, daySpan.To); used != 100 {
			b.Fatalf("account %d: daily %d", i, used)
		}
		s.Sum(key(i, minute, "requests|sliding:60"), minuteSpan.From, minuteSpan.To)
	}
}
