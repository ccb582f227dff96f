package projections

import (
	"strconv"
	"testing"
	"time"

	"github.com/ledgerworks/ledger/events"
)

// BenchmarkProjectorApply folds stream messages as a rebuild does, without
// NATS: 400 usage events per message (a producer's batch), one quota per
// tenant split per user with a daily and a one-minute limit, over 16 tenants
// and the given number of accounts, into a fresh store, 28 messages (about
// 4 MiB) per commit. It reports events folded per second.
func BenchmarkProjectorApply(b *testing.B) {
	for _, accounts := range []int{1000, 1_000_000} {
		b.Run("accounts="+strconv.Itoa(accounts), func(b *testing.B) {
			store, err := OpenStore(b.TempDir(), StoreOptions{})
			if err != nil {
				b.Fatal(err)
			}
			defer store.Close()
			p, err := NewProjector(nil, store, ProjectorOptions{})
			if err != nil {
				b.Fatal(err)
			}
			const tenants, perMsg, perCommit = 16, 400, 28
			now := time.Now().UTC()
			seq := uint64(0)
			var setup []Message
			for t := range tenants {
				tenant := "t" + strconv.Itoa(t)
				q := events.Quota{ID: "bench", Split: []string{events.DimUser}, Limits: []events.Limit{
					{Metric: events.MetricTokens, Max: 1 << 40, Window: events.Window{Kind: events.Calendar, Unit: events.UnitDay, TZ: "UTC"}},
					{Metric: events.MetricRequests, Max: 1 << 40, Window: events.Window{Kind: events.Sliding, Seconds: 60}},
				}}
				data, err := events.EncodeBatch([]events.Event{events.New("q"+tenant, tenant, now, nil, &events.QuotaSet{Quota: q})})
				if err != nil {
					b.Fatal(err)
				}
				seq++
				setup = append(setup, Message{Seq: seq, Subject: events.Subject(tenant, events.ClassAdmin), Data: data})
			}
			if err := p.Apply(setup); err != nil {
				b.Fatal(err)
			}
			n := 0
			next := func() Message {
				tenant := "t" + strconv.Itoa(n/perMsg%tenants)
				evs := make([]events.Event, perMsg)
				for i := range evs {
					a := (n * 7919) % accounts
					evs[i] = events.New("e"+strconv.Itoa(n), tenant, now, events.Dimensions{events.DimUser: "u" + strconv.Itoa(a/tenants), events.DimModel: "gpt-4o"},
						&events.UsageRecorded{Amounts: events.Amounts{InputTokens: 100, OutputTokens: 50, Requests: 1}})
					n++
				}
				data, err := events.EncodeBatch(evs)
				if err != nil {
					b.Fatal(err)
				}
				seq++
				return Message{Seq: seq, Subject: events.Subject(tenant, events.ClassUsage), Data: data}
			}
			msgs := make([]Message, perCommit)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				for i := range msgs {
					msgs[i] = next()
				}
				b.StartTimer()
				if err := p.Apply(msgs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*perMsg*perCommit)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
