package api

import (
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/ledgerworks/ledger/events"
)

// The batch codec (fastcodec_batch.go) must write what the reflection
// encoder writes and decode what it decodes.

func TestBatchCodecShape(t *testing.T) {
	if got := batchShape(); got != batchShapeWant {
		t.Fatalf("the batch types changed, so their hand-written codec is off (slower, still correct).\n"+
			"Update the append*/read* functions in api/fastcodec_batch.go for the new fields, then set batchShapeWant to:\n%q", got)
	}
}

func randBatchRequest(r *rand.Rand) BatchRequest {
	if r.IntN(10) == 0 {
		return BatchRequest{}
	}
	q := BatchRequest{Ops: make([]BatchOp, r.IntN(8))}
	for i := range q.Ops {
		op := &q.Ops[i]
		// Mostly one operation, as clients send; sometimes none or several,
		// which the service refuses but the codec must carry.
		for k := range 3 {
			if r.IntN(3) != 0 && (k == 0 || r.IntN(4) == 0) {
				continue
			}
			switch k {
			case 0:
				v := randReserveRequest(r)
				op.Reserve = &v
			case 1:
				v := randReconcileRequest(r)
				op.Reconcile = &v
			case 2:
				op.Release = &ReleaseRequest{Tenant: randStr(r), Reservation: randStr(r)}
				if r.IntN(2) == 0 {
					op.Release.Reason = randStr(r)
				}
			}
		}
	}
	return q
}

func randBatchReply(r *rand.Rand) BatchReply {
	if r.IntN(10) == 0 {
		return BatchReply{}
	}
	q := BatchReply{Results: make([]BatchResult, r.IntN(8))}
	for i := range q.Results {
		res := &q.Results[i]
		switch r.IntN(4) {
		case 0:
			v := randReserveReply(r)
			res.Reserve = &v
		case 1:
			v := randDecisionReply(r)
			res.Decision = &v
		case 2:
			res.Error = &events.Error{Code: events.CodeQuotaExceeded, Message: randStr(r), RetryAfter: r.Int64N(100),
				Details: map[string]any{"quota": randStr(r), "limit": r.Int64N(1 << 40), "used": -r.Int64N(5), "percent": 0.5}}
		}
	}
	return q
}

func TestBatchCodecMatchesReflection(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 11))
	exp := time.Date(2026, 1, 15, 10, 0, 0, 5, time.UTC)
	checkSame(t, BatchRequest{Ops: []BatchOp{
		{Reserve: &ReserveRequest{Tenant: "acme", Reservation: "r1", Dims: events.Dimensions{"user": "ana"}, Estimate: events.Amounts{Tokens: 100}}},
		{Reconcile: &ReconcileRequest{Tenant: "acme", Reservation: "r0", Actual: events.Amounts{Tokens: 90}}},
		{Release: &ReleaseRequest{Tenant: "acme", Reservation: "r2", Reason: "cancelled"}},
		{},
	}}, func() any { return new(BatchRequest) })
	checkSame(t, BatchReply{Results: []BatchResult{
		{Reserve: &ReserveReply{Reservation: "r1", Outcome: "created", ExpiresAt: exp, Seq: 7}},
		{Decision: &DecisionReply{Outcome: "reconciled", Seq: 8}},
		{Error: &events.Error{Code: events.CodeQuotaExceeded, Message: "over", Details: map[string]any{"limit": 100}, Suggestion: "wait"}},
	}}, func() any { return new(BatchReply) })
	checkSame(t, BatchRequest{Ops: []BatchOp{}}, func() any { return new(BatchRequest) })
	checkSame(t, BatchReply{Results: []BatchResult{}}, func() any { return new(BatchReply) })
	for range 500 {
		q := randBatchRequest(r)
		checkSame(t, q, func() any { return new(BatchRequest) })
		checkSame(t, &q, func() any { return new(BatchRequest) })
		p := randBatchReply(r)
		checkSame(t, p, func() any { return new(BatchReply) })
		checkSame(t, &p, func() any { return new(BatchReply) })
	}
}

// FuzzBatchDecode: whatever the fast decoder takes, reflection decodes the
// same. Seeds: canonical encodings of random batches.
func FuzzBatchDecode(f *testing.F) {
	r := rand.New(rand.NewPCG(8, 9))
	for range 5 {
		for _, v := range []any{randBatchRequest(r), randBatchReply(r)} {
			b, err := encodeReflect(v)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, fresh := range []func() any{func() any { return new(BatchRequest) }, func() any { return new(BatchReply) }} {
			a, c := fresh(), fresh()
			if decodeFast(b, a) {
				if err := decodeReflect(b, c); err != nil || !reflect.DeepEqual(a, c) {
					t.Fatalf("%T: fast %+v, reflection %+v (%v)", a, a, c, err)
				}
			}
		}
	})
}

func BenchmarkBatchCodec(b *testing.B) {
	now := time.Now()
	req := BatchRequest{}
	rep := BatchReply{}
	for i := range 16 {
		id := "5IhNWrVTfkNLvTCVmKcBs" + string(rune('a'+i))
		if i%2 == 0 {
			req.Ops = append(req.Ops, BatchOp{Reserve: &ReserveRequest{Tenant: "acme", Reservation: id, Dims: events.Dimensions{"user": "u17", "model": "gpt-4o"}, Estimate: events.Amounts{Tokens: 100}}})
			rep.Results = append(rep.Results, BatchResult{Reserve: &ReserveReply{Reservation: id, Outcome: "created", ExpiresAt: now, Seq: 123456}})
		} else {
			req.Ops = append(req.Ops, BatchOp{Reconcile: &ReconcileRequest{Tenant: "acme", Reservation: id, Actual: events.Amounts{Requests: 1}}})
			rep.Results = append(rep.Results, BatchResult{Decision: &DecisionReply{Outcome: "reconciled", Seq: 123457}})
		}
	}
	benchCodec(b, []codecCase{
		{"request-16", req, func() any { return new(BatchRequest) }},
		{"reply-16", rep, func() any { return new(BatchReply) }},
	})
}
