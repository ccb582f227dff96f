package api

import (
	"time"

	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/internal/mp"
)

// A hand-written msgpack codec for the check: the request that every call of
// a metered service makes, so the one whose cost shows (fastcodec_write.go
// does the same for the reservation path). It writes exactly
// the bytes Encode writes through reflection, and decodes only that
// canonical form; anything else (and every error) goes through reflection,
// as before. A test compares both on random values.
//
// It is written for the fields the check types have now: checkShapeOK turns
// it off if they change (TestCheckCodecShape then says what to update).

var checkShapeOK = checkShape() == checkShapeWant

// checkShapeWant is checkShape() of the types this codec was written for.
const checkShapeWant = "api.CheckRequest{Tenant string json:\"tenant\";Dims events.Dimensions json:\"dims,omitempty\";Groups []string json:\"groups,omitempty\";Request events.Amounts json:\"request,omitempty\";AfterSeq uint64 json:\"after_seq,omitempty\"}" +
	"api.CheckReply{Allowed bool json:\"allowed\";Code events.Code json:\"code,omitempty\";Reason string json:\"reason,omitempty\";Message string json:\"message,omitempty\";RetryUntil *time.Time json:\"retry_until,omitempty\";RetryAfter int64 json:\"retry_after,omitempty\";Warning bool json:\"warning,omitempty\";Limits []api.LimitStatus json:\"limits\";AppliedSeq uint64 json:\"applied_seq\";Degraded bool json:\"-\" msgpack:\"-\"}" +
	"api.LimitStatus{Quota string json:\"quota\";Split string json:\"split,omitempty\";Metric events.Metric json:\"metric\";Window events.Window json:\"window\";Enforcement string json:\"enforcement\";Limit int64 json:\"limit\";Used int64 json:\"used\";Reserved int64 json:\"reserved\";Requested int64 json:\"requested,omitempty\";Remaining int64 json:\"remaining\";PercentUsed float64 json:\"percent_used\";Warning bool json:\"warning,omitempty\";Exceeded bool json:\"exceeded,omitempty\";WindowStart *time.Time json:\"window_start,omitempty\";ResetsAt time.Time json:\"resets_at\";ResetsIn int64 json:\"resets_in\"}" +
	"events.Window{Kind events.WindowKind json:\"kind\" msgpack:\"kind\";Unit string json:\"unit,omitempty\" msgpack:\"unit,omitempty\";Seconds int64 json:\"seconds,omitempty\" msgpack:\"seconds,omitempty\";TZ string json:\"tz,omitempty\" msgpack:\"tz,omitempty\"}" +
	"events.Amounts{Tokens int64 json:\"tokens,omitempty\" msgpack:\"tokens,omitempty\";InputTokens int64 json:\"input_tokens,omitempty\" msgpack:\"input_tokens,omitempty\";OutputTokens int64 json:\"output_tokens,omitempty\" msgpack:\"output_tokens,omitempty\";Requests int64 json:\"requests,omitempty\" msgpack:\"requests,omitempty\";Cost int64 json:\"cost,omitempty\" msgpack:\"cost,omitempty\";Actions events.Counts json:\"actions,omitempty\" msgpack:\"actions,omitempty\"}"

// checkShape describes the fields of the types the codec writes.
func checkShape() string {
	return mp.Shape(CheckRequest{}, CheckReply{}, LimitStatus{}, events.Window{}, events.Amounts{})
}

// encodeFast returns the msgpack encoding of v, or false for a type it does
// not know.
func encodeFast(v any) ([]byte, bool) {
	return appendFast(nil, v)
}

// appendFast appends the msgpack encoding of v to b, or reports false for a
// type it does not know.
func appendFast(b []byte, v any) ([]byte, bool) {
	if !checkShapeOK {
		return nil, false
	}
	switch v := v.(type) {
	case ReserveRequest, *ReserveRequest, ReserveReply, *ReserveReply, ReconcileRequest, *ReconcileRequest, DecisionReply, *DecisionReply:
		return appendWriteFast(b, v) // fastcodec_write.go
	case BatchRequest, *BatchRequest, BatchReply, *BatchReply:
		return appendBatchFast(b, v) // fastcodec_batch.go
	case CheckRequest:
		return appendCheckRequest(grow(b, 128), &v), true
	case *CheckRequest:
		return appendCheckRequest(grow(b, 128), v), true
	case CheckReply:
		return appendCheckReply(grow(b, 64+256*len(v.Limits)), &v), true
	case *CheckReply:
		return appendCheckReply(grow(b, 64+256*len(v.Limits)), v), true
	}
	return nil, false
}

// grow makes room for about n more bytes in b at once, rather than in the
// several steps append would take.
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	return append(make([]byte, 0, len(b)+n), b...)
}

// DecodeCheckRequest is Decode for a check request, reusing the map of
// req.Dims (emptied first) instead of allocating one when the request is
// canonical msgpack: a service decodes a check for every call it meters,
// and keeps its requests for reuse. req.Dims may then be empty rather
// than nil.
func DecodeCheckRequest(b []byte, req *CheckRequest) error {
	dims := req.Dims
	clear(dims)
	*req = CheckRequest{}
	if dims != nil && checkShapeOK && len(b) <= MaxRequestBytes && Detect(b) == Msgpack {
		r := &mp.Reader{B: b}
		x := CheckRequest{Dims: dims}
		if readCheckRequest(r, &x) && r.Done() {
			*req = x
			return nil
		}
	}
	// Anything else (JSON, a non-canonical encoding, an error) as Decode
	// does it, into a new map.
	return Decode(b, req)
}

// decodeFast decodes canonical msgpack into v, or reports false (v may then
// hold part of the input: decode it again from scratch).
func decodeFast(b []byte, v any) bool {
	if !checkShapeOK {
		return false
	}
	// Reflection merges into what v holds; only a zero v is decoded here.
	r := &mp.Reader{B: b}
	switch v := v.(type) {
	case *CheckRequest:
		return decodeInto(r, v, checkRequestZero, readCheckRequest)
	case *CheckReply:
		return decodeInto(r, v, checkReplyZero, readCheckReply)
	case *BatchRequest, *BatchReply:
		return decodeBatchFast(r, v) // fastcodec_batch.go
	}
	return decodeWriteFast(r, v) // fastcodec_write.go
}

// decodeInto decodes all of r into *v with read, only when *v is zero
// (reflection merges into what v holds: keep its way for anything else).
func decodeInto[T any](r *mp.Reader, v *T, zero func(*T) bool, read func(*mp.Reader, *T) bool) bool {
	if v == nil || !zero(v) {
		return false
	}
	var x T
	if !read(r, &x) || !r.Done() {
		return false
	}
	*v = x
	return true
}

func amountsEmpty(a *events.Amounts) bool {
	return a.Tokens == 0 && a.InputTokens == 0 && a.OutputTokens == 0 && a.Requests == 0 && a.Cost == 0 && len(a.Actions) == 0
}

// amountsZero is amountsEmpty without even an empty map: the zero value.
func amountsZero(a *events.Amounts) bool { return amountsEmpty(a) && a.Actions == nil }

func appendCheckRequest(b []byte, r *CheckRequest) []byte {
	n := 1
	if len(r.Dims) > 0 {
		n++
	}
	if len(r.Groups) > 0 {
		n++
	}
	if !amountsEmpty(&r.Request) {
		n++
	}
	if r.AfterSeq != 0 {
		n++
	}
	b = mp.AppendMapLen(b, n)
	b = mp.AppendStr(b, "tenant")
	b = mp.AppendStr(b, r.Tenant)
	if len(r.Dims) > 0 {
		b = mp.AppendStr(b, "dims")
		b = mp.AppendStrMap(b, r.Dims)
	}
	if len(r.Groups) > 0 {
		b = mp.AppendStr(b, "groups")
		b = mp.AppendStrs(b, r.Groups)
	}
	if !amountsEmpty(&r.Request) {
		b = mp.AppendStr(b, "request")
		b = r.Request.AppendMsgpack(b, mp.AppendInt)
	}
	if r.AfterSeq != 0 {
		b = mp.AppendStr(b, "after_seq")
		b = mp.AppendUint(b, r.AfterSeq)
	}
	return b
}

// timeSet is how omitempty treats a *time.Time: nil and the zero time are
// left out.
func timeSet(t *time.Time) bool { return t != nil && !t.IsZero() }

func appendCheckReply(b []byte, r *CheckReply) []byte {
	n := 3
	for _, set := range []bool{r.Code != "", r.Reason != "", r.Message != "", timeSet(r.RetryUntil), r.RetryAfter != 0, r.Warning} {
		if set {
			n++
		}
	}
	b = mp.AppendMapLen(b, n)
	b = mp.AppendStr(b, "allowed")
	b = mp.AppendBool(b, r.Allowed)
	if r.Code != "" {
		b = mp.AppendStr(b, "code")
		b = mp.AppendStr(b, string(r.Code))
	}
	if r.Reason != "" {
		b = mp.AppendStr(b, "reason")
		b = mp.AppendStr(b, r.Reason)
	}
	if r.Message != "" {
		b = mp.AppendStr(b, "message")
		b = mp.AppendStr(b, r.Message)
	}
	if timeSet(r.RetryUntil) {
		b = mp.AppendStr(b, "retry_until")
		b = mp.AppendTime(b, *r.RetryUntil)
	}
	if r.RetryAfter != 0 {
		b = mp.AppendStr(b, "retry_after")
		b = mp.AppendInt(b, r.RetryAfter)
	}
	if r.Warning {
		b = mp.AppendStr(b, "warning")
		b = append(b, mp.True)
	}
	b = mp.AppendStr(b, "limits")
	if r.Limits == nil {
		b = append(b, mp.Nil)
	} else {
		b = mp.AppendArrayLen(b, len(r.Limits))
		for i := range r.Limits {
			b = appendLimitStatus(b, &r.Limits[i])
		}
	}
	b = mp.AppendStr(b, "applied_seq")
	return mp.AppendUint(b, r.AppliedSeq)
}

func appendLimitStatus(b []byte, l *LimitStatus) []byte {
	n := 11
	for _, set := range []bool{l.Split != "", l.Requested != 0, l.Warning, l.Exceeded, timeSet(l.WindowStart)} {
		if set {
			n++
		}
	}
	b = mp.AppendMapLen(b, n)
	b = mp.AppendStr(b, "quota")
	b = mp.AppendStr(b, l.Quota)
	if l.Split != "" {
		b = mp.AppendStr(b, "split")
		b = mp.AppendStr(b, l.Split)
	}
	b = mp.AppendStr(b, "metric")
	b = mp.AppendStr(b, string(l.Metric))
	b = mp.AppendStr(b, "window")
	b = appendWindow(b, &l.Window)
	b = mp.AppendStr(b, "enforcement")
	b = mp.AppendStr(b, l.Enforcement)
	b = mp.AppendStr(b, "limit")
	b = mp.AppendInt(b, l.Limit)
	b = mp.AppendStr(b, "used")
	b = mp.AppendInt(b, l.Used)
	b = mp.AppendStr(b, "reserved")
	b = mp.AppendInt(b, l.Reserved)
	if l.Requested != 0 {
		b = mp.AppendStr(b, "requested")
		b = mp.AppendInt(b, l.Requested)
	}
	b = mp.AppendStr(b, "remaining")
	b = mp.AppendInt(b, l.Remaining)
	b = mp.AppendStr(b, "percent_used")
	b = mp.AppendFloat64(b, l.PercentUsed)
	if l.Warning {
		b = mp.AppendStr(b, "warning")
		b = append(b, mp.True)
	}
	if l.Exceeded {
		b = mp.AppendStr(b, "exceeded")
		b = append(b, mp.True)
	}
	if timeSet(l.WindowStart) {
		b = mp.AppendStr(b, "window_start")
		b = mp.AppendTime(b, *l.WindowStart)
	}
	b = mp.AppendStr(b, "resets_at")
	b = mp.AppendTime(b, l.ResetsAt)
	b = mp.AppendStr(b, "resets_in")
	return mp.AppendInt(b, l.ResetsIn)
}

func appendWindow(b []byte, w *events.Window) []byte {
	n := 1
	for _, set := range []bool{w.Unit != "", w.Seconds != 0, w.TZ != ""} {
		if set {
			n++
		}
	}
	b = mp.AppendMapLen(b, n)
	b = mp.AppendStr(b, "kind")
	b = mp.AppendStr(b, string(w.Kind))
	if w.Unit != "" {
		b = mp.AppendStr(b, "unit")
		b = mp.AppendStr(b, w.Unit)
	}
	if w.Seconds != 0 {
		b = mp.AppendStr(b, "seconds")
		b = mp.AppendInt(b, w.Seconds)
	}
	if w.TZ != "" {
		b = mp.AppendStr(b, "tz")
		b = mp.AppendStr(b, w.TZ)
	}
	return b
}

// known returns the constant equal to b, or "" and false. Strings that
// come back in every request or reply (dimension names, metrics, window
// kinds and units, enforcements) then cost no allocation; the compiler
// compares string(b) here without converting.
func known(b []byte) (string, bool) {
	switch string(b) {
	case events.DimUser:
		return events.DimUser, true
	case events.DimModel:
		return events.DimModel, true
	case events.DimProject:
		return events.DimProject, true
	case events.DimAgent:
		return events.DimAgent, true
	case events.DimLocation:
		return events.DimLocation, true
	case events.DimOperation:
		return events.DimOperation, true
	case events.DimSession:
		return events.DimSession, true
	case string(events.MetricTokens):
		return string(events.MetricTokens), true
	case string(events.MetricInputTokens):
		return string(events.MetricInputTokens), true
	case string(events.MetricOutputTokens):
		return string(events.MetricOutputTokens), true
	case string(events.MetricRequests):
		return string(events.MetricRequests), true
	case string(events.MetricCost):
		return string(events.MetricCost), true
	case string(events.MetricWorkflows):
		return string(events.MetricWorkflows), true
	case string(events.MetricConcurrent):
		return string(events.MetricConcurrent), true
	case string(events.Sliding):
		return string(events.Sliding), true
	case string(events.Calendar):
		return string(events.Calendar), true
	case string(events.Rolling):
		return string(events.Rolling), true
	case "hour":
		return "hour", true
	case "day":
		return "day", true
	case "week":
		return "week", true
	case "month":
		return "month", true
	case "UTC":
		return "UTC", true
	case string(events.Hard):
		return string(events.Hard), true
	case string(events.Soft):
		return string(events.Soft), true
	}
	return "", false
}

// strIn reads a string, without allocating for a known one (see known), else reusing the last one of slot.
func strIn(r *mp.Reader, slot int) (string, bool) {
	off := r.Off
	b, ok := r.StrBytes()
	if !ok {
		return "", false
	}
	if s, ok := known(b); ok {
		return s, true
	}
	r.Off = off
	return r.StrIn(slot)
}

var checkRequestFields = mp.KeysOf("tenant", "dims", "groups", "request", "after_seq")

// checkRequestZero says whether decodeFast may write *req: see decodeFast.
func checkRequestZero(req *CheckRequest) bool {
	return req.Tenant == "" && req.Dims == nil && req.Groups == nil && amountsZero(&req.Request) && req.AfterSeq == 0
}

func readCheckRequest(r *mp.Reader, req *CheckRequest) bool {
	n, ok := r.MapOf(len(checkRequestFields))
	if !ok {
		return false
	}
	next := 0
	for range n {
		i, ok := r.Field(checkRequestFields, &next)
		if !ok {
			return false
		}
		switch i {
		case 0:
			req.Tenant, ok = r.Str()
		case 1:
			req.Dims, ok = readStrMap(r, req.Dims)
		case 2:
			req.Groups, ok = readStrs(r)
		case 3:
			ok = events.ReadAmounts(r, &req.Request)
		case 4:
			req.AfterSeq, ok = r.Uint()
		}
		if !ok {
			return false
		}
	}
	return true
}

// readStrMap reads a non-empty map of strings with sorted keys, into m if
// it is not nil (it must be empty), else into a new map.
func readStrMap(r *mp.Reader, m map[string]string) (map[string]string, bool) {
	n, ok := r.MapLen()
	if !ok || n == 0 {
		return nil, false
	}
	if m == nil {
		m = make(map[string]string, n)
	}
	var prev []byte
	for j := range n {
		kb, ok := r.StrBytes()
		if !ok || (j > 0 && string(kb) <= string(prev)) {
			return nil, false
		}
		k, ok1 := known(kb)
		if !ok1 {
			k = string(kb)
		}
		v, ok := r.Str()
		if !ok {
			return nil, false
		}
		m[k] = v
		prev = kb
	}
	return m, true
}

func readStrs(r *mp.Reader) ([]string, bool) {
	n, ok := r.ArrayLen()
	if !ok || n == 0 {
		return nil, false
	}
	out := make([]string, n)
	for j := range out {
		if out[j], ok = r.Str(); !ok {
			return nil, false
		}
	}
	return out, true
}

var checkReplyFields = mp.KeysOf("allowed", "code", "reason", "message", "retry_until", "retry_after", "warning", "limits", "applied_seq")

// checkReplyZero says whether decodeFast may write *rep: see decodeFast.
func checkReplyZero(rep *CheckReply) bool {
	return !rep.Allowed && rep.Code == "" && rep.Reason == "" && rep.Message == "" && rep.RetryUntil == nil &&
		rep.RetryAfter == 0 && !rep.Warning && rep.Limits == nil && rep.AppliedSeq == 0
}

func readCheckReply(r *mp.Reader, rep *CheckReply) bool {
	n, ok := r.MapOf(len(checkReplyFields))
	if !ok {
		return false
	}
	next := 0
	for range n {
		i, ok := r.Field(checkReplyFields, &next)
		if !ok {
			return false
		}
		switch i {
		case 0:
			rep.Allowed, ok = r.Bool()
		case 1:
			var s string
			s, ok = r.Str()
			rep.Code = events.Code(s)
		case 2:
			rep.Reason, ok = r.Str()
		case 3:
			rep.Message, ok = r.Str()
		case 4:
			var t time.Time
			t, ok = r.Time()
			rep.RetryUntil = &t
		case 5:
			rep.RetryAfter, ok = r.Int()
		case 6:
			rep.Warning, ok = r.Bool()
		case 7:
			rep.Limits, ok = readLimits(r)
		case 8:
			rep.AppliedSeq, ok = r.Uint()
		}
		if !ok {
			return false
		}
	}
	return true
}

// readLimits reads the limits of a reply: nil, or an array of statuses.
func readLimits(r *mp.Reader) ([]LimitStatus, bool) {
	if c, _ := r.Peek(); c == mp.Nil {
		r.Off++
		return nil, true
	}
	n, ok := r.ArrayLen()
	if !ok {
		return nil, false
	}
	out := make([]LimitStatus, n)
	// Every windowed limit has a window start: one allocation for all of
	// them rather than one each.
	var starts []time.Time
	for j := range out {
		if !readLimitStatus(r, &out[j], &starts, n-j) {
			return nil, false
		}
	}
	return out, true
}

var limitStatusFields = mp.KeysOf("quota", "split", "metric", "window", "enforcement", "limit", "used", "reserved", "requested", "remaining", "percent_used", "warning", "exceeded", "window_start", "resets_at", "resets_in")

// readLimitStatus reads one status; a window start goes into *starts,
// which it makes room in for left statuses when it has none.
func readLimitStatus(r *mp.Reader, l *LimitStatus, starts *[]time.Time, left int) bool {
	n, ok := r.MapOf(len(limitStatusFields))
	if !ok {
		return false
	}
	next := 0
	for range n {
		i, ok := r.Field(limitStatusFields, &next)
		if !ok {
			return false
		}
		switch i {
		case 0:
			l.Quota, ok = strIn(r, 0)
		case 1:
			l.Split, ok = strIn(r, 1)
		case 2:
			var s string
			s, ok = strIn(r, 2)
			l.Metric = events.Metric(s)
		case 3:
			ok = readWindow(r, &l.Window)
		case 4:
			l.Enforcement, ok = strIn(r, 3)
		case 5:
			l.Limit, ok = r.Int()
		case 6:
			l.Used, ok = r.Int()
		case 7:
			l.Reserved, ok = r.Int()
		case 8:
			l.Requested, ok = r.Int()
		case 9:
			l.Remaining, ok = r.Int()
		case 10:
			l.PercentUsed, ok = r.Float64()
		case 11:
			l.Warning, ok = r.Bool()
		case 12:
			l.Exceeded, ok = r.Bool()
		case 13:
			var t time.Time
			if t, ok = r.Time(); ok {
				if len(*starts) == cap(*starts) {
					*starts = make([]time.Time, 0, left)
				}
				*starts = append(*starts, t)
				l.WindowStart = &(*starts)[len(*starts)-1]
			}
		case 14:
			l.ResetsAt, ok = r.Time()
		case 15:
			l.ResetsIn, ok = r.Int()
		}
		if !ok {
			return false
		}
	}
	return true
}

var windowFields = mp.KeysOf("kind", "unit", "seconds", "tz")

func readWindow(r *mp.Reader, w *events.Window) bool {
	n, ok := r.MapOf(len(windowFields))
	if !ok {
		return false
	}
	next := 0
	for range n {
		i, ok := r.Field(windowFields, &next)
		if !ok {
			return false
		}
		switch i {
		case 0:
			var s string
			s, ok = strIn(r, 4)
			w.Kind = events.WindowKind(s)
		case 1:
			w.Unit, ok = strIn(r, 5)
		case 2:
			w.Seconds, ok = r.Int()
		case 3:
			w.TZ, ok = strIn(r, 6)
		}
		if !ok {
			return false
		}
	}
	return true
}
