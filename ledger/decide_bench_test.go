package ledger_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/ledger"
	"github.com/ledgerworks/ledger/projections"
)

// storeView is a ledger.View over a projection store, as the service's.
type storeView struct {
	*projections.Store
	tenant string
}

func (v storeView) Seen(id string) bool {
	ok, err := v.Store.Seen(v.tenant, id)
	return err == nil && ok
}

func (v storeView) Settled(id string) (projections.ClosedReservation, bool) {
	c, ok, err := v.Store.Settled(v.tenant, id)
	return c, err == nil && ok
}

// BenchmarkDecide decides a reserve and a consume for one of 1,000 users of
// a tenant with a per-user quota of a daily and a one-minute limit, against
// counters in a store: the pure decision, without NATS. The state is not
// evolved between iterations, so every iteration decides on the same state.
func BenchmarkDecide(b *testing.B) {
	store, err := projections.OpenStore(b.TempDir(), projections.StoreOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	now := time.Now().UTC()
	t := projections.NewTenant("acme")
	q := events.Quota{ID: "bench", Split: []string{events.DimUser}, Limits: []events.Limit{
		{Metric: events.MetricTokens, Max: 1 << 40, Window: events.Window{Kind: events.Calendar, Unit: events.UnitDay, TZ: "Europe/Berlin"}},
		{Metric: events.MetricRequests, Max: 1 << 40, Window: events.Window{Kind: events.Sliding, Seconds: 60}},
	}}
	set := events.New("q", "acme", now, nil, &events.QuotaSet{Quota: q})
	d := projections.NewDeltas()
	projections.Evolve(t, &set, projections.Meta{Seq: 1}, d)
	for i := range 5000 {
		ev := events.New("e"+strconv.Itoa(i), "acme", now, events.Dimensions{events.DimUser: "u" + strconv.Itoa(i%1000)},
			&events.UsageRecorded{Amounts: events.Amounts{Tokens: 100, Requests: 1}})
		projections.Evolve(t, &ev, projections.Meta{Seq: 2}, d)
	}
	if err := store.Write(&projections.Commit{Deltas: d, Tenants: []*projections.Tenant{t}, Applied: 2}); err != nil {
		b.Fatal(err)
	}
	view := storeView{store, "acme"}
	n := 0
	newID := func() string { n++; return "id" + strconv.Itoa(n) }
	for _, c := range []struct {
		name string
		cmd  func(i int) ledger.Command
	}{
		{"reserve", func(i int) ledger.Command {
			return ledger.Reserve{Reservation: "r" + strconv.Itoa(i), Dims: events.Dimensions{events.DimUser: "u" + strconv.Itoa(i%1000)}, Estimate: events.Amounts{Tokens: 500}}
		}},
		{"consume", func(i int) ledger.Command {
			return ledger.Consume{ID: "c" + strconv.Itoa(i), Dims: events.Dimensions{events.DimUser: "u" + strconv.Itoa(i%1000)}, Amounts: events.Amounts{Tokens: 500, Requests: 1}}
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := ledger.Decide(t, view, c.cmd(i), now, newID); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
