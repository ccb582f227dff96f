package ledger_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ledgerworks/ledger/client"
	"github.com/ledgerworks/ledger/dashboard"
	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/internal/ledgertest"
	"github.com/ledgerworks/ledger/ledger"
)

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// TestDashboardSource: the ledger's views, as the dashboard's JSON: a quota
// split 25 ways shows its 20 hottest splits with a check's numbers,
// reservations soonest expiry first, tenants in pages, every partition
// owned, and a denial noted.
func TestDashboardSource(t *testing.T) {
	l := ledgertest.StartLedger(t, ledger.Config{})
	srv := httptest.NewServer(l.Dashboard())
	defer srv.Close()
	c := newClient(t, ledgertest.Connect(t, l.ClientURL()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.SetQuota(ctx, "acme", events.Quota{ID: "per-user", Split: []string{events.DimUser},
		Limits: []events.Limit{{Metric: events.MetricTokens, Max: 100, Window: events.Window{Kind: events.Calendar, Unit: events.UnitDay}}}}); err != nil {
		t.Fatal(err)
	}
	var evs []events.Event
	for i := range 25 {
		evs = append(evs, events.New(fmt.Sprint("u", i), "acme", time.Now(), events.Dimensions{events.DimUser: fmt.Sprintf("user%02d", i)}, &events.UsageRecorded{Amounts: events.Amounts{Tokens: int64(i * 4)}}))
	}
	rec, err := c.RecordUsage(ctx, evs...)
	if err != nil {
		t.Fatal(err)
	}
	for i, ttl := range []time.Duration{time.Hour, time.Minute, 10 * time.Minute} {
		if _, err := c.Reserve(ctx, "acme", events.Dimensions{events.DimUser: "user00"}, events.Amounts{Tokens: 1}, client.ReserveOptions{ID: fmt.Sprint("r", i), TTL: ttl}); err != nil {
			t.Fatal(err)
		}
	}
	// The reserves are answered once appended: wait for them to be folded too.
	last := streamLastSeq(t, ctx, ledgertest.JetStream(t, ledgertest.Connect(t, l.ClientURL())))
	if err := l.Projector().WaitApplied(ctx, max(rec.Seq, last)); err != nil {
		t.Fatal(err)
	}
	for _, tenant := range []string{"b1", "b2", "b3"} {
		if _, err := c.RecordUsage(ctx, events.New("x", tenant, time.Now(), nil, &events.UsageRecorded{Amounts: events.Amounts{Requests: 1}})); err != nil {
			t.Fatal(err)
		}
	}

	var v dashboard.TenantView
	getJSON(t, srv.URL+"/api/tenants/acme", &v)
	if !v.Known || len(v.Quotas) != 1 {
		t.Fatalf("acme: %+v", v)
	}
	q := v.Quotas[0]
	if q.SplitsSeen != 25 || q.SplitsMore || len(q.Splits) != 20 {
		t.Fatalf("per-user: %d splits seen (more %t), %d shown", q.SplitsSeen, q.SplitsMore, len(q.Splits))
	}
	// user24 used 96 of 100; user00 used nothing but holds 3 in reservations.
	top := q.Splits[0]
	if top.Split != "user24" || top.Limits[0].Used != 96 || top.Limits[0].Limit != 100 || top.Limits[0].Remaining != 4 || !top.Limits[0].Warning {
		t.Errorf("hottest split %+v", top)
	}
	for i := 1; i < len(q.Splits); i++ {
		if q.Splits[i].Limits[0].PercentUsed > q.Splits[i-1].Limits[0].PercentUsed {
			t.Errorf("splits not hottest first: %s before %s", q.Splits[i-1].Split, q.Splits[i].Split)
		}
	}
	if v.ReservationsTotal != 3 || len(v.Reservations) != 3 || v.Reservations[0].ID != "r1" || v.Reservations[2].ID != "r0" {
		t.Errorf("reservations %+v", v.Reservations)
	}

	var unknown dashboard.TenantView
	getJSON(t, srv.URL+"/api/tenants/nobody", &unknown)
	if unknown.Known || len(unknown.Quotas) != 0 {
		t.Errorf("a tenant without events: %+v", unknown)
	}

	var list dashboard.TenantList
	ledgertest.Eventually(t, 10*time.Second, "four tenants", func() bool {
		getJSON(t, srv.URL+"/api/tenants", &list)
		return len(list.Tenants) == 4
	})
	getJSON(t, srv.URL+"/api/tenants?limit=2&after=acme", &list)
	if len(list.Tenants) != 2 || list.Tenants[0].Name != "b1" || list.Tenants[1].Name != "b2" || !list.More {
		t.Errorf("page after acme: %+v", list)
	}
	// A row looks at 20 splits of each quota: user00 to user19, of whom
	// user19 used 76 %; it says it sampled.
	getJSON(t, srv.URL+"/api/tenants?prefix=acme", &list)
	if len(list.Tenants) != 1 || list.Tenants[0].Quotas != 1 || list.Tenants[0].PeakPercent != 76 || list.Tenants[0].Reservations != 3 || !list.Tenants[0].Sampled {
		t.Errorf("acme's row: %+v", list.Tenants)
	}

	var pv dashboard.PartitionsView
	getJSON(t, srv.URL+"/api/partitions", &pv)
	if len(pv.Partitions) != events.Partitions || len(pv.Members) != 1 {
		t.Fatalf("partitions %+v", pv)
	}
	for _, p := range pv.Partitions {
		if p.Owner != pv.Member || p.Epoch == 0 || p.Lag != 0 || p.AppliedSeq < p.LastSeq {
			t.Errorf("partition %+v", p)
		}
	}

	// A denial: user24 asks for more than is left.
	src := l.DashboardSource()
	changed := src.Changed()
	if _, err := c.Consume(ctx, "acme", "over", events.Dimensions{events.DimUser: "user24"}, events.Amounts{Tokens: 10}); err == nil {
		t.Fatal("consume past the limit granted")
	}
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("no change after a denial")
	}
	getJSON(t, srv.URL+"/api/tenants/acme", &v)
	if v.DenialsTotal != 1 || len(v.Denials) != 1 || v.Denials[0].Code != "quota_exceeded" || v.Denials[0].Op != "consume" || v.Denials[0].Quota != "per-user" {
		t.Errorf("denials %+v (total %d)", v.Denials, v.DenialsTotal)
	}
}
