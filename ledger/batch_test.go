package ledger_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ledgerworks/ledger/api"
	"github.com/ledgerworks/ledger/client"
	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/internal/ledgertest"
	"github.com/ledgerworks/ledger/ledger"
)

// A batch decides each operation as its own request would be, in order for
// one tenant: a reserve and the reconcile of the same reservation in one
// batch both land, and one decision append carries the tenant's operations.
// A refused operation gets its own typed error and changes nothing; the
// others are decided regardless.
func TestBatchDecidesEachOperation(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	nc, js, c := startCapped(t, ctx, ledger.Config{}, 100)
	dims := events.Dimensions{"user": "ana"}
	req := api.BatchRequest{Ops: []api.BatchOp{
		{Reserve: &api.ReserveRequest{Tenant: "acme", Reservation: "r1", Dims: dims, Estimate: events.Amounts{Tokens: 60}}},
		{Reconcile: &api.ReconcileRequest{Tenant: "acme", Reservation: "r1", Actual: events.Amounts{Tokens: 50}}},
		{Reserve: &api.ReserveRequest{Tenant: "acme", Reservation: "r2", Dims: dims, Estimate: events.Amounts{Tokens: 60}}}, // 50 used: over the limit
		{Release: &api.ReleaseRequest{Tenant: "acme", Reservation: "r-404"}},
		{Reserve: &api.ReserveRequest{Tenant: "a.b", Reservation: "r3", Estimate: events.Amounts{Tokens: 1}}},
		{Reserve: &api.ReserveRequest{Tenant: "globex", Reservation: "r5", Estimate: events.Amounts{Tokens: 1}}}, // not the batch's tenant
		{},
		{Reserve: &api.ReserveRequest{Tenant: "acme", Reservation: "r4", Dims: dims, Estimate: events.Amounts{Tokens: 50}}},
	}}
	want := []struct {
		outcome string
		code    events.Code
	}{{"created", ""}, {"reconciled", ""}, {"", events.CodeQuotaExceeded}, {"", events.CodeNotFound}, {"", events.CodeInvalidArgument}, {"", events.CodeInvalidArgument}, {"", events.CodeInvalidArgument}, {"created", ""}}

	before, err := ledger.StreamLastSeq(ctx, js, events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	body, err := api.Encode(api.Msgpack, req)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := nc.RequestWithContext(ctx, api.TenantSubject(api.SubjectBatch, "acme"), body)
	if err != nil {
		t.Fatal(err)
	}
	if h := msg.Header.Get(api.HeaderErrorCode); h != "" {
		t.Fatalf("the batch failed as a whole (%s): %s", h, msg.Data)
	}
	var rep api.BatchReply
	if err := api.Decode(msg.Data, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != len(want) {
		t.Fatalf("%d results for %d operations", len(rep.Results), len(want))
	}
	var seq uint64
	for i, w := range want {
		res := rep.Results[i]
		switch {
		case w.code != "":
			if res.Error == nil || res.Error.Code != w.code {
				t.Errorf("operation %d: %+v, want error %s", i, res, w.code)
			}
		case res.Reserve != nil:
			if res.Reserve.Outcome != w.outcome || res.Reserve.Seq == 0 {
				t.Errorf("operation %d: %+v, want %s", i, res.Reserve, w.outcome)
			}
			seq = max(seq, res.Reserve.Seq)
		case res.Decision != nil:
			if res.Decision.Outcome != w.outcome || res.Decision.Seq == 0 {
				t.Errorf("operation %d: %+v, want %s", i, res.Decision, w.outcome)
			}
			seq = max(seq, res.Decision.Seq)
		default:
			t.Errorf("operation %d: empty result %+v", i, res)
		}
	}
	after, err := ledger.StreamLastSeq(ctx, js, events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	if after != before+1 || seq != after {
		t.Errorf("the batch moved the stream from %d to %d (results at %d), want one decision append", before, after, seq)
	}

	// The projection holds exactly the decided operations: r1's 50 tokens
	// used, r4's 50 held.
	chk, err := c.Check(ctx, api.CheckRequest{Tenant: "acme", Dims: dims, AfterSeq: after})
	if err != nil {
		t.Fatal(err)
	}
	if len(chk.Limits) != 1 || chk.Limits[0].Used != 50 || chk.Limits[0].Reserved != 50 {
		t.Fatalf("after the batch: %+v, want 50 used and 50 reserved", chk.Limits)
	}
}

// startCapped starts a ledger with cfg and gives tenant acme a quota of max
// tokens a day; it returns a connection to it, its JetStream and a client.
func startCapped(t *testing.T, ctx context.Context, cfg ledger.Config, max int64) (*nats.Conn, jetstream.JetStream, *client.Client) {
	t.Helper()
	l := ledgertest.StartLedger(t, cfg)
	nc := ledgertest.Connect(t, l.ClientURL())
	c, err := client.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetQuota(ctx, "acme", events.Quota{ID: "cap", Limits: []events.Limit{dayLimit(events.MetricTokens, max)}}); err != nil {
		t.Fatal(err)
	}
	return nc, ledgertest.JetStream(t, nc), c
}
