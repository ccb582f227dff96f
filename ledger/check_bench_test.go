package ledger

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ledgerworks/ledger/api"
	"github.com/ledgerworks/ledger/client"
	"github.com/ledgerworks/ledger/events"
)

// BenchmarkCheckHandler runs the check endpoint's handler as the service
// runs it (decoding, validation, the projection's view and statuses, the
// metrics, the reply and its encoding) on a live ledger, without the NATS
// round trip around it: the ledger's own share of a check's latency, which
// `ledger bench` compares with a bare echo. The quota is the bench's: a
// daily and a one-minute limit split per user, 1,000 users with usage.
func BenchmarkCheckHandler(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := Start(ctx, Config{DataDir: b.TempDir(), Listen: "127.0.0.1:-1", Durability: SyncPeriodic})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	nc, err := nats.Connect(l.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	cl, err := client.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	const tenant = "acme"
	q := events.Quota{ID: "bench", Split: []string{events.DimUser}, Limits: []events.Limit{
		{Metric: events.MetricTokens, Max: 1 << 40, Window: events.Window{Kind: events.Calendar, Unit: events.UnitDay, TZ: "UTC"}},
		{Metric: events.MetricRequests, Max: 1 << 40, Window: events.Window{Kind: events.Sliding, Seconds: 60}},
	}}
	if _, err := cl.SetQuota(ctx, tenant, q); err != nil {
		b.Fatal(err)
	}
	var seq uint64
	for i := range 1000 {
		r, err := cl.Consume(ctx, tenant, "", events.Dimensions{events.DimUser: "u" + strconv.Itoa(i)}, events.Amounts{Tokens: 100, Requests: 1})
		if err != nil {
			b.Fatal(err)
		}
		seq = r.Seq
	}
	if err := l.projector.WaitApplied(ctx, seq); err != nil {
		b.Fatal(err)
	}
	bodies := make([][]byte, 1000)
	for i := range bodies {
		if bodies[i], err = api.Encode(api.Msgpack, api.CheckRequest{Tenant: tenant,
			Dims: events.Dimensions{events.DimUser: "u" + strconv.Itoa(i), events.DimModel: "gpt-4o"}, Request: events.Amounts{Tokens: 500}}); err != nil {
			b.Fatal(err)
		}
	}
	s := l.service
	h := s.noteDenials("check", s.instrument("check", s.check))
	var buf []byte
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		reply, err := h(inlineCtx, request{enc: api.Msgpack, data: bodies[i%len(bodies)], tenant: tenant})
		if err != nil {
			b.Fatal(err)
		}
		a := reply.(*checkAnswer)
		if buf, err = api.AppendEncode(buf[:0], api.Msgpack, &a.CheckReply); err != nil {
			b.Fatal(err)
		}
		a.release() // as the service's respond does
		i++
	}
}
