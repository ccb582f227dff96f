package api

import (
	"time"

	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/internal/mp"
)

// The hand-written msgpack codec of the reservation path: reserve and
// reconcile requests and their replies, sent for every metered call that
// holds budget before it runs. Like the check's (fastcodec.go) it writes
// the bytes reflection writes, decodes only that canonical form and leaves
// everything else to reflection; its tests compare both on random values.
//
// The nested types (LimitStatus, Window, Amounts) are the check's: the
// codec is on only while both the check's shape and this one match.

var writeShapeOK = checkShapeOK && writeShape() == writeShapeWant

// writeShapeWant is writeShape() of the types this codec was written for.
const writeShapeWant = "api.ReserveRequest{Tenant string json:\"tenant\";Reservation string json:\"reservation\";Dims events.Dimensions json:\"dims,omitempty\";Groups []string json:\"groups,omitempty\";Estimate events.Amounts json:\"estimate\";TTLMs int64 json:\"ttl_ms,omitempty\"}" +
	"api.ReserveReply{Reservation string json:\"reservation\";Outcome string json:\"outcome\";ExpiresAt time.Time json:\"expires_at\";Seq uint64 json:\"seq,omitempty\";Limits []api.LimitStatus json:\"limits,omitempty\";Warning bool json:\"warning,omitempty\";Degraded bool json:\"-\" msgpack:\"-\"}" +
	"api.ReconcileRequest{Tenant string json:\"tenant\";Reservation string json:\"reservation\";Actual events.Amounts json:\"actual\"}" +
	"api.DecisionReply{Outcome string json:\"outcome,omitempty\";Seq uint64 json:\"seq,omitempty\";Limits []api.LimitStatus json:\"limits,omitempty\";Warning bool json:\"warning,omitempty\";Degraded bool json:\"-\" msgpack:\"-\"}"

// writeShape describes the fields of the types this codec writes.
func writeShape() string {
	return mp.Shape(ReserveRequest{}, ReserveReply{}, ReconcileRequest{}, DecisionReply{})
}

// appendWriteFast is appendFast for the reservation path's types.
func appendWriteFast(b []byte, v any) ([]byte, bool) {
	if !writeShapeOK {
		return nil, false
	}
	switch v := v.(type) {
	case ReserveRequest:
		return appendReserveRequest(grow(b, 128), &v), true
	case *ReserveRequest:
		return appendReserveRequest(grow(b, 128), v), true
	case ReserveReply:
		return appendReserveReply(grow(b, 64+256*len(v.Limits)), &v), true
	case *ReserveReply:
		return appendReserveReply(grow(b, 64+256*len(v.Limits)), v), true
	case ReconcileRequest:
		return appendReconcileRequest(grow(b, 96), &v), true
	case *ReconcileRequest:
		return appendReconcileRequest(grow(b, 96), v), true
	case DecisionReply:
		return appendDecisionReply(grow(b, 32+256*len(v.Limits)), &v), true
	case *DecisionReply:
		return appendDecisionReply(grow(b, 32+256*len(v.Limits)), v), true
	}
	return nil, false
}

// decodeWriteFast is decodeFast for the reservation path's types. As there,
// only a zero value is decoded into: reflection merges into what v holds.
func decodeWriteFast(r *mp.Reader, v any) bool {
	if !writeShapeOK {
		return false
	}
	switch v := v.(type) {
	case *ReserveRequest:
		return decodeInto(r, v, reserveRequestZero, readReserveRequest)
	case *ReserveReply:
		return decodeInto(r, v, reserveReplyZero, readReserveReply)
	case *ReconcileRequest:
		return decodeInto(r, v, reconcileRequestZero, readReconcileRequest)
	case *DecisionReply:
		return decodeInto(r, v, decisionReplyZero, readDecisionReply)
	}
	return false
}

func appendReserveRequest(b []byte, r *ReserveRequest) []byte {
	n := 3
	for _, set := range []bool{len(r.Dims) > 0, len(r.Groups) > 0, r.TTLMs != 0} {
		if set {
			n++
		}
	}
	b = mp.AppendMapLen(b, n)
	b = mp.AppendStr(b, "tenant")
	b = mp.AppendStr(b, r.Tenant)
	b = mp.AppendStr(b, "reservation")
	b = mp.AppendStr(b, r.Reservation)
	if len(r.Dims) > 0 {
		b = mp.AppendStr(b, "dims")
		b = mp.AppendStrMap(b, r.Dims)
	}
	if len(r.Groups) > 0 {
		b = mp.AppendStr(b, "groups")
		b = mp.AppendStrs(b, r.Groups)
	}
	b = mp.AppendStr(b, "estimate")
	b = r.Estimate.AppendMsgpack(b, mp.AppendInt)
	if r.TTLMs != 0 {
		b = mp.AppendStr(b, "ttl_ms")
		b = mp.AppendInt(b, r.TTLMs)
	}
	return b
}

func appendReserveReply(b []byte, r *ReserveReply) []byte {
	n := 3
	for _, set := range []bool{r.Seq != 0, len(r.Limits) > 0, r.Warning} {
		if set {
			n++
		}
	}
	b = mp.AppendMapLen(b, n)
	b = mp.AppendStr(b, "reservation")
	b = mp.AppendStr(b, r.Reservation)
	b = mp.AppendStr(b, "outcome")
	b = mp.AppendStr(b, r.Outcome)
	b = mp.AppendStr(b, "expires_at")
	b = mp.AppendTime(b, r.ExpiresAt)
	return appendDecisionTail(b, r.Seq, r.Limits, r.Warning)
}

// appendDecisionTail writes the fields every decision reply ends with, each
// omitted when empty.
func appendDecisionTail(b []byte, seq uint64, limits []LimitStatus, warning bool) []byte {
	if seq != 0 {
		b = mp.AppendStr(b, "seq")
		b = mp.AppendUint(b, seq)
	}
	if len(limits) > 0 {
		b = mp.AppendStr(b, "limits")
		b = mp.AppendArrayLen(b, len(limits))
		for i := range limits {
			b = appendLimitStatus(b, &limits[i])
		}
	}
	if warning {
		b = mp.AppendStr(b, "warning")
		b = append(b, mp.True)
	}
	return b
}

func appendReconcileRequest(b []byte, r *ReconcileRequest) []byte {
	b = mp.AppendMapLen(b, 3)
	b = mp.AppendStr(b, "tenant")
	b = mp.AppendStr(b, r.Tenant)
	b = mp.AppendStr(b, "reservation")
	b = mp.AppendStr(b, r.Reservation)
	b = mp.AppendStr(b, "actual")
	return r.Actual.AppendMsgpack(b, mp.AppendInt)
}

func appendDecisionReply(b []byte, r *DecisionReply) []byte {
	n := 0
	for _, set := range []bool{r.Outcome != "", r.Seq != 0, len(r.Limits) > 0, r.Warning} {
		if set {
			n++
		}
	}
	b = mp.AppendMapLen(b, n)
	if r.Outcome != "" {
		b = mp.AppendStr(b, "outcome")
		b = mp.AppendStr(b, r.Outcome)
	}
	return appendDecisionTail(b, r.Seq, r.Limits, r.Warning)
}

var reserveRequestFields = mp.KeysOf("tenant", "reservation", "dims", "groups", "estimate", "ttl_ms")

func reserveRequestZero(req *ReserveRequest) bool {
	return req.Tenant == "" && req.Reservation == "" && req.Dims == nil && req.Groups == nil &&
		amountsZero(&req.Estimate) && req.TTLMs == 0
}

func readReserveRequest(r *mp.Reader, req *ReserveRequest) bool {
	return r.Fields(reserveRequestFields, func(i int) (ok bool) {
		switch i {
		case 0:
			req.Tenant, ok = r.Str()
		case 1:
			req.Reservation, ok = r.Str()
		case 2:
			req.Dims, ok = readStrMap(r, nil)
		case 3:
			req.Groups, ok = readStrs(r)
		case 4:
			ok = events.ReadAmounts(r, &req.Estimate)
		case 5:
			req.TTLMs, ok = r.Int()
		}
		return ok
	})
}

var reserveReplyFields = mp.KeysOf("reservation", "outcome", "expires_at", "seq", "limits", "warning")

func reserveReplyZero(rep *ReserveReply) bool {
	return rep.Reservation == "" && rep.Outcome == "" && rep.ExpiresAt == (time.Time{}) && // exactly zero: not a zero instant in some zone

		rep.Seq == 0 && rep.Limits == nil && !rep.Warning
}

func readReserveReply(r *mp.Reader, rep *ReserveReply) bool {
	return r.Fields(reserveReplyFields, func(i int) (ok bool) {
		switch i {
		case 0:
			rep.Reservation, ok = r.Str()
		case 1:
			rep.Outcome, ok = outcome(r)
		case 2:
			rep.ExpiresAt, ok = r.Time()
		case 3:
			rep.Seq, ok = r.Uint()
		case 4:
			rep.Limits, ok = readLimits(r)
		case 5:
			rep.Warning, ok = r.Bool()
		}
		return ok
	})
}

var reconcileRequestFields = mp.KeysOf("tenant", "reservation", "actual")

func reconcileRequestZero(req *ReconcileRequest) bool {
	return req.Tenant == "" && req.Reservation == "" && amountsZero(&req.Actual)
}

func readReconcileRequest(r *mp.Reader, req *ReconcileRequest) bool {
	return r.Fields(reconcileRequestFields, func(i int) (ok bool) {
		switch i {
		case 0:
			req.Tenant, ok = r.Str()
		case 1:
			req.Reservation, ok = r.Str()
		case 2:
			ok = events.ReadAmounts(r, &req.Actual)
		}
		return ok
	})
}

var decisionReplyFields = mp.KeysOf("outcome", "seq", "limits", "warning")

func decisionReplyZero(rep *DecisionReply) bool {
	return rep.Outcome == "" && rep.Seq == 0 && rep.Limits == nil && !rep.Warning
}

func readDecisionReply(r *mp.Reader, rep *DecisionReply) bool {
	return r.Fields(decisionReplyFields, func(i int) (ok bool) {
		switch i {
		case 0:
			rep.Outcome, ok = outcome(r)
		case 1:
			rep.Seq, ok = r.Uint()
		case 2:
			rep.Limits, ok = readLimits(r)
		case 3:
			rep.Warning, ok = r.Bool()
		}
		return ok
	})
}

// outcome reads a decision's outcome, without allocating for the ones the
// ledger answers (every reply of the reservation path carries one).
func outcome(r *mp.Reader) (string, bool) {
	b, ok := r.StrBytes()
	if !ok {
		return "", false
	}
	switch string(b) {
	case "created":
		return "created", true
	case "exists":
		return "exists", true
	case "reconciled":
		return "reconciled", true
	case "charged":
		return "charged", true
	case "released":
		return "released", true
	case "expired":
		return "expired", true
	case "consumed":
		return "consumed", true
	}
	return string(b), true
}
