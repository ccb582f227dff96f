package api

import (
	"bytes"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/internal/mp"
)

// The hand-written msgpack codec of batch requests and replies: the Go
// client sends every reserve, reconcile and release in one. It composes the
// reservation path's codec (fastcodec_write.go) and, like it, writes the
// bytes reflection writes and decodes only that canonical form. A result's
// typed error is written and read by reflection (its details are free-form)
// in place: a denial is one error among many results.

var batchShapeOK = writeShapeOK && batchShape() == batchShapeWant

// batchShapeWant is batchShape() of the types this codec was written for.
const batchShapeWant = "api.BatchRequest{Ops []api.BatchOp json:\"ops\"}" +
	"api.BatchOp{Reserve *api.ReserveRequest json:\"reserve,omitempty\";Reconcile *api.ReconcileRequest json:\"reconcile,omitempty\";Release *api.ReleaseRequest json:\"release,omitempty\"}" +
	"api.BatchReply{Results []api.BatchResult json:\"results\"}" +
	"api.BatchResult{Reserve *api.ReserveReply json:\"reserve,omitempty\";Decision *api.DecisionReply json:\"decision,omitempty\";Error *events.Error json:\"error,omitempty\"}" +
	"api.ReleaseRequest{Tenant string json:\"tenant\";Reservation string json:\"reservation\";Reason string json:\"reason,omitempty\"}"

// batchShape describes the fields of the types this codec writes.
func batchShape() string {
	return mp.Shape(BatchRequest{}, BatchOp{}, BatchReply{}, BatchResult{}, ReleaseRequest{})
}

// appendBatchFast is appendFast for batches.
func appendBatchFast(b []byte, v any) ([]byte, bool) {
	if !batchShapeOK {
		return nil, false
	}
	switch v := v.(type) {
	case BatchRequest:
		return appendBatchRequest(grow(b, 16+128*len(v.Ops)), &v), true
	case *BatchRequest:
		return appendBatchRequest(grow(b, 16+128*len(v.Ops)), v), true
	case BatchReply:
		return appendBatchReply(grow(b, 16+320*len(v.Results)), &v)
	case *BatchReply:
		return appendBatchReply(grow(b, 16+320*len(v.Results)), v)
	}
	return nil, false
}

// decodeBatchFast is decodeFast for batches.
func decodeBatchFast(r *mp.Reader, v any) bool {
	if !batchShapeOK {
		return false
	}
	switch v := v.(type) {
	case *BatchRequest:
		return decodeInto(r, v, func(q *BatchRequest) bool { return q.Ops == nil }, readBatchRequest)
	case *BatchReply:
		return decodeInto(r, v, func(q *BatchReply) bool { return q.Results == nil }, readBatchReply)
	}
	return false
}

func appendBatchRequest(b []byte, q *BatchRequest) []byte {
	b = mp.AppendMapLen(b, 1)
	b = mp.AppendStr(b, "ops")
	if q.Ops == nil {
		return append(b, mp.Nil)
	}
	b = mp.AppendArrayLen(b, len(q.Ops))
	for i := range q.Ops {
		op := &q.Ops[i]
		n := 0
		for _, set := range []bool{op.Reserve != nil, op.Reconcile != nil, op.Release != nil} {
			if set {
				n++
			}
		}
		b = mp.AppendMapLen(b, n)
		if op.Reserve != nil {
			b = mp.AppendStr(b, "reserve")
			b = appendReserveRequest(b, op.Reserve)
		}
		if op.Reconcile != nil {
			b = mp.AppendStr(b, "reconcile")
			b = appendReconcileRequest(b, op.Reconcile)
		}
		if op.Release != nil {
			b = mp.AppendStr(b, "release")
			b = appendReleaseRequest(b, op.Release)
		}
	}
	return b
}

func appendReleaseRequest(b []byte, r *ReleaseRequest) []byte {
	n := 2
	if r.Reason != "" {
		n++
	}
	b = mp.AppendMapLen(b, n)
	b = mp.AppendStr(b, "tenant")
	b = mp.AppendStr(b, r.Tenant)
	b = mp.AppendStr(b, "reservation")
	b = mp.AppendStr(b, r.Reservation)
	if r.Reason != "" {
		b = mp.AppendStr(b, "reason")
		b = mp.AppendStr(b, r.Reason)
	}
	return b
}

// appendBatchReply reports false when a result's error does not encode.
func appendBatchReply(b []byte, q *BatchReply) ([]byte, bool) {
	b = mp.AppendMapLen(b, 1)
	b = mp.AppendStr(b, "results")
	if q.Results == nil {
		return append(b, mp.Nil), true
	}
	b = mp.AppendArrayLen(b, len(q.Results))
	for i := range q.Results {
		res := &q.Results[i]
		n := 0
		for _, set := range []bool{res.Reserve != nil, res.Decision != nil, res.Error != nil} {
			if set {
				n++
			}
		}
		b = mp.AppendMapLen(b, n)
		if res.Reserve != nil {
			b = mp.AppendStr(b, "reserve")
			b = appendReserveReply(b, res.Reserve)
		}
		if res.Decision != nil {
			b = mp.AppendStr(b, "decision")
			b = appendDecisionReply(b, res.Decision)
		}
		if res.Error != nil {
			e, err := encodeReflect(res.Error)
			if err != nil {
				return nil, false
			}
			b = mp.AppendStr(b, "error")
			b = append(b, e...)
		}
	}
	return b, true
}

var (
	batchRequestFields = mp.KeysOf("ops")
	batchOpFields      = mp.KeysOf("reserve", "reconcile", "release")
	batchReplyFields   = mp.KeysOf("results")
	batchResultFields  = mp.KeysOf("reserve", "decision", "error")
)

// readBatchHeader reads the one-field map of a batch and its array length;
// nil reports an array written as nil.
func readBatchHeader(r *mp.Reader, fields mp.Keys) (n int, isNil, ok bool) {
	if m, ok := r.MapOf(1); !ok || m != 1 {
		return 0, false, false
	}
	next := 0
	if _, ok := r.Field(fields, &next); !ok {
		return 0, false, false
	}
	if c, _ := r.Peek(); c == mp.Nil {
		r.Off++
		return 0, true, true
	}
	n, ok = r.ArrayLen()
	return n, false, ok
}

func readBatchRequest(r *mp.Reader, q *BatchRequest) bool {
	n, isNil, ok := readBatchHeader(r, batchRequestFields)
	if !ok || isNil {
		return ok
	}
	q.Ops = make([]BatchOp, n)
	for i := range q.Ops {
		if !readBatchOp(r, &q.Ops[i]) {
			return false
		}
	}
	return true
}

func readBatchOp(r *mp.Reader, op *BatchOp) bool {
	return r.Fields(batchOpFields, func(i int) (ok bool) {
		switch i {
		case 0:
			op.Reserve = new(ReserveRequest)
			ok = readReserveRequest(r, op.Reserve)
		case 1:
			op.Reconcile = new(ReconcileRequest)
			ok = readReconcileRequest(r, op.Reconcile)
		case 2:
			op.Release = new(ReleaseRequest)
			ok = readReleaseRequest(r, op.Release)
		}
		return ok
	})
}

var releaseRequestFields = mp.KeysOf("tenant", "reservation", "reason")

func readReleaseRequest(r *mp.Reader, req *ReleaseRequest) bool {
	return r.Fields(releaseRequestFields, func(i int) (ok bool) {
		switch i {
		case 0:
			req.Tenant, ok = r.Str()
		case 1:
			req.Reservation, ok = r.Str()
		case 2:
			req.Reason, ok = r.Str()
		}
		return ok
	})
}

func readBatchReply(r *mp.Reader, q *BatchReply) bool {
	n, isNil, ok := readBatchHeader(r, batchReplyFields)
	if !ok || isNil {
		return ok
	}
	q.Results = make([]BatchResult, n)
	for i := range q.Results {
		if !readBatchResult(r, &q.Results[i]) {
			return false
		}
	}
	return true
}

func readBatchResult(r *mp.Reader, res *BatchResult) bool {
	return r.Fields(batchResultFields, func(i int) (ok bool) {
		switch i {
		case 0:
			res.Reserve = new(ReserveReply)
			ok = readReserveReply(r, res.Reserve)
		case 1:
			res.Decision = new(DecisionReply)
			ok = readDecisionReply(r, res.Decision)
		case 2:
			res.Error, ok = readErrorValue(r)
		}
		return ok
	})
}

// readErrorValue decodes one typed error by reflection, in place.
func readErrorValue(r *mp.Reader) (*events.Error, bool) {
	if c, _ := r.Peek(); c == mp.Nil {
		return nil, false // reflection would leave the pointer nil: its way
	}
	rest := bytes.NewReader(r.B[r.Off:])
	dec := msgpack.NewDecoder(rest)
	dec.SetCustomStructTag("json")
	e := new(events.Error)
	if err := dec.Decode(e); err != nil {
		return nil, false
	}
	r.Off = len(r.B) - rest.Len()
	return e, true
}
