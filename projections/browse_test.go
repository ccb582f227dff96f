package projections

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/ledgerworks/ledger/events"
)

// TestStoreTenantsPages: tenants come in byte order, filtered by prefix,
// page by page with after, and more says when a page is not the last.
func TestStoreTenantsPages(t *testing.T) {
	s := newStore(t)
	var ts []*Tenant
	for _, n := range []string{"acme", "acme-eu", "acme2", "globex", "initech", "acm"} {
		ts = append(ts, NewTenant(n))
	}
	if err := s.Write(&Commit{Deltas: NewDeltas(), Tenants: ts, Applied: 1}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		prefix, after string
		limit         int
		want          []string
		more          bool
	}{
		{"", "", 10, []string{"acm", "acme", "acme-eu", "acme2", "globex", "initech"}, false},
		{"", "", 2, []string{"acm", "acme"}, true},
		{"", "acme", 2, []string{"acme-eu", "acme2"}, true},
		{"", "acme2", 2, []string{"globex", "initech"}, false},
		{"acme", "", 10, []string{"acme", "acme-eu", "acme2"}, false},
		{"acme", "acme", 1, []string{"acme-eu"}, true},
		{"acme", "a", 10, []string{"acme", "acme-eu", "acme2"}, false}, // after sorts before the prefix
		{"zz", "", 10, nil, false},
		{"", "initech", 10, nil, false},
	} {
		got, more, err := s.Tenants(tc.prefix, tc.after, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, tc.want) || more != tc.more {
			t.Errorf("Tenants(%q, %q, %d) = %q, more %t; want %q, more %t", tc.prefix, tc.after, tc.limit, got, more, tc.want, tc.more)
		}
	}
}

// TestStoreSplits: a quota's split values once each however many
// buckets, limits and epochs hold them, only from the given epoch on, never
// another quota's or tenant's, and at most limit of them.
func TestStoreSplits(t *testing.T) {
	s := newStore(t)
	d := NewDeltas()
	add := func(tenant, quota string, epoch uint32, split, limit string, bucket int64, reserved bool) {
		d.Counters[CounterKey{Tenant: tenant, Quota: quota, Epoch: epoch, Split: split, Limit: limit, Bucket: bucket, Reserved: reserved}] += 5
	}
	for b := int64(100); b < 110; b++ {
		for _, u := range []string{"ana", "bo", "bob", "b"} {
			add("acme", "daily", 1, u, "tokens|calendar:day", b, false)
			add("acme", "daily", 1, u, "requests|sliding:60", b, b%2 == 0)
		}
	}
	add("acme", "daily", 0, "old", "tokens|calendar:day", 100, false)   // reset away
	add("acme", "daily", 2, "carla", "tokens|calendar:day", 100, false) // a split reset of its own
	add("acme", "daily", 2, "ana", "tokens|calendar:day", 100, false)
	add("acme", "dailyx", 1, "dora", "tokens|calendar:day", 100, false)
	add("acme2", "daily", 1, "eve", "tokens|calendar:day", 100, false)
	add("acme", "flat", 0, "", "tokens|calendar:day", 100, false)
	if err := s.Write(&Commit{Deltas: d, Applied: 1}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		quota string
		from  uint32
		limit int
		want  []string
		more  bool
	}{
		{"daily", 1, 100, []string{"ana", "b", "bo", "bob", "carla"}, false},
		{"daily", 0, 100, []string{"old", "ana", "b", "bo", "bob", "carla"}, false},
		{"daily", 1, 3, []string{"ana", "b", "bo"}, true},
		{"daily", 2, 100, []string{"ana", "carla"}, false},
		{"flat", 0, 100, []string{""}, false},
		{"none", 0, 100, nil, false},
	} {
		got, more, err := s.Splits("acme", tc.quota, tc.from, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) || more != tc.more {
			t.Errorf("Splits(acme, %s, %d, %d) = %q, more %t; want %q, more %t", tc.quota, tc.from, tc.limit, got, more, tc.want, tc.more)
		}
	}
}

// TestQuotaStatusesAsCheck: a quota's statuses for one split are what a
// check with that split's dimensions and no request sees of that quota.
func TestQuotaStatusesAsCheck(t *testing.T) {
	f := newFixture(t)
	now := at(t, "2026-03-10T12:00:00Z")
	f.setQuota(now.Add(-time.Hour), events.Quota{ID: "per-user", Split: []string{"user"}, Scope: map[string]string{"model": "m"},
		Limits: []events.Limit{limitOf(events.MetricTokens, 100, calendarW("day", "")), limitOf(events.MetricRequests, 5, slidingW(3600))}})
	f.setQuota(now.Add(-time.Hour), events.Quota{ID: "flat", Limits: []events.Limit{limitOf(events.MetricTokens, 1000, rollingW(86400))}})
	f.use(now.Add(-time.Minute), dims("user", "ana", "model", "m"), nil, events.Amounts{Tokens: 40, Requests: 2})
	f.use(now.Add(-time.Minute), dims("user", "bo", "model", "m"), nil, events.Amounts{Tokens: 90, Requests: 5})
	for _, user := range []string{"ana", "bo", "nobody"} {
		var want []LimitStatus
		for _, st := range f.statuses(now, dims("user", user, "model", "m"), nil, events.Amounts{}) {
			if st.Quota == "per-user" {
				want = append(want, st)
			}
		}
		got := QuotaStatuses(f.ten, f.c, "per-user", user, now)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %+v\nwant %+v", user, got, want)
		}
	}
	if got := QuotaStatuses(f.ten, f.c, "flat", "", now); len(got) != 1 || got[0].Used != 130 || got[0].Remaining != 870 {
		t.Errorf("flat: %+v", got)
	}
	if got := QuotaStatuses(f.ten, f.c, "none", "", now); got != nil {
		t.Errorf("no such quota: %+v", got)
	}
}
