package api

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/internal/mp"
)

// A hand-written msgpack codec for the check: the request that every call of
// a metered service makes, so the one whose cost shows. It writes exactly
// the bytes Encode writes through reflection, and decodes only that
// canonical form; anything else (and every error) goes through reflection,
// as before. A test compares both on random values.
//
// It is written for the fields the check types have now: checkShapeOK turns
// it off if they change (TestCheckCodecShape then says what to update).

var checkShapeOK = checkShape() == checkShapeWant

// checkShapeWant is checkShape() of the types this codec was written for.
const checkShapeWant = "api.CheckRequest{Tenant string json:\"tenant\";Dims events.Dimensions json:\"dims,omitempty\";Groups []string json:\"groups,omitempty\";Request events.Amounts json:\"request,omitempty\";AfterSeq uint64 json:\"after_seq,omitempty\"}" +
	"api.CheckReply{Allowed bool json:\"allowed\";Code events.Code json:\"code,omitempty\";Reason string json:\"reason,omitempty\";Message string json:\"message,omitempty\";RetryUntil *time.Time json:\"retry_until,omitempty\";RetryAfter int64 json:\"retry_after,omitempty\";Warning bool json:\"warning,omitempty\";Limits []api.LimitStatus json:\"limits\";AppliedSeq uint64 json:\"applied_seq\"}" +
	"api.LimitStatus{Quota string json:\"quota\";Split string json:\"split,omitempty\";Metric events.Metric json:\"metric\";Window events.Window json:\"window\";Enforcement string json:\"enforcement\";Limit int64 json:\"limit\";Used int64 json:\"used\";Reserved int64 json:\"reserved\";Requested int64 json:\"requested,omitempty\";Remaining int64 json:\"remaining\";PercentUsed float64 json:\"percent_used\";Warning bool json:\"warning,omitempty\";Exceeded bool json:\"exceeded,omitempty\";WindowStart *time.Time json:\"window_start,omitempty\";ResetsAt time.Time json:\"resets_at\";ResetsIn int64 json:\"resets_in\"}" +
	"events.Window{Kind events.WindowKind json:\"kind\" msgpack:\"kind\";Unit string json:\"unit,omitempty\" msgpack:\"unit,omitempty\";Seconds int64 json:\"seconds,omitempty\" msgpack:\"seconds,omitempty\";TZ string json:\"tz,omitempty\" msgpack:\"tz,omitempty\"}" +
	"events.Amounts{Tokens int64 json:\"tokens,omitempty\" msgpack:\"tokens,omitempty\";InputTokens int64 json:\"input_tokens,omitempty\" msgpack:\"input_tokens,omitempty\";OutputTokens int64 json:\"output_tokens,omitempty\" msgpack:\"output_tokens,omitempty\";Requests int64 json:\"requests,omitempty\" msgpack:\"requests,omitempty\";Cost int64 json:\"cost,omitempty\" msgpack:\"cost,omitempty\";Actions events.Counts json:\"actions,omitempty\" msgpack:\"actions,omitempty\"}"

// checkShape describes the fields of the types the codec writes.
func checkShape() string {
	var b strings.Builder
	for _, v := range []any{CheckRequest{}, CheckReply{}, LimitStatus{}, events.Window{}, events.Amounts{}} {
		t := reflect.TypeOf(v)
		b.WriteString(t.String() + "{")
		for i := range t.NumField() {
			f := t.Field(i)
			if i > 0 {
				b.WriteByte(';')
			}
			fmt.Fprintf(&b, "%s %s %s", f.Name, f.Type, f.Tag)
		}
		b.WriteString("}")
	}
	return b.String()
}

// encodeFast returns the msgpack encoding of v, or false for a type it does
// not know.
func encodeFast(v any) ([]byte, bool) {
	if !checkShapeOK {
		return nil, false
	}
	switch v := v.(type) {
	case CheckRequest:
		return appendCheckRequest(make([]byte, 0, 128), &v), true
	case *CheckRequest:
		return appendCheckRequest(make([]byte, 0, 128), v), true
	case CheckReply:
		return appendCheckReply(make([]byte, 0, 64+256*len(v.Limits)), &v), true
	case *CheckReply:
		return appendCheckReply(make([]byte, 0, 64+256*len(v.Limits)), v), true
	}
	return nil, false
}

// decodeFast decodes canonical msgpack into v, or reports false (v may then
// hold part of the input: decode it again from scratch).
func decodeFast(b []byte, v any) bool {
	if !checkShapeOK {
		return false
	}
	if rv := reflect.ValueOf(v); rv.Kind() != reflect.Pointer || rv.IsNil() || !rv.Elem().IsZero() {
		return false // reflection merges into what v holds; keep its way
	}
	r := &mp.Reader{B: b}
	switch v := v.(type) {
	case *CheckRequest:
		var req CheckRequest
		if !readCheckRequest(r, &req) || !r.Done() {
			return false
		}
		*v = req
		return true
	case *CheckReply:
		var rep CheckReply
		if !readCheckReply(r, &rep) || !r.Done() {
			return false
		}
		*v = rep
		return true
	}
	return false
}

func appendStrMap(b []byte, m map[string]string) []byte {
	var buf [12]string
	keys := mp.SortedKeys(m, buf[:])
	b = mp.AppendMapLen(b, len(keys))
	for _, k := range keys {
		b = mp.AppendStr(b, k)
		b = mp.AppendStr(b, m[k])
	}
	return b
}

func amountsEmpty(a *events.Amounts) bool {
	return a.Tokens == 0 && a.InputTokens == 0 && a.OutputTokens == 0 && a.Requests == 0 && a.Cost == 0 && len(a.Actions) == 0
}

func appendAmounts(b []byte, a *events.Amounts) []byte {
	b = mp.AppendMapLen(b, a.MsgpackFields())
	return a.AppendMsgpackFields(b, mp.AppendInt)
}

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
		b = appendStrMap(b, r.Dims)
	}
	if len(r.Groups) > 0 {
		b = mp.AppendStr(b, "groups")
		b = mp.AppendArrayLen(b, len(r.Groups))
		for _, g := range r.Groups {
			b = mp.AppendStr(b, g)
		}
	}
	if !amountsEmpty(&r.Request) {
		b = mp.AppendStr(b, "request")
		b = appendAmounts(b, &r.Request)
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

// fields reads a map whose keys must come in the order of names (each at
// most once), calling read for each with the key's index in names.
func fields(r *mp.Reader, names []string, read func(i int) bool) bool {
	n, ok := r.MapLen()
	if !ok || n > len(names) {
		return false
	}
	next := 0
	for range n {
		k, ok := r.StrBytes()
		if !ok {
			return false
		}
		i := next
		for i < len(names) && names[i] != string(k) {
			i++
		}
		if i == len(names) || !read(i) {
			return false // unknown, repeated or out of order; or a bad value
		}
		next = i + 1
	}
	return true
}

var checkRequestFields = []string{"tenant", "dims", "groups", "request", "after_seq"}

func readCheckRequest(r *mp.Reader, req *CheckRequest) bool {
	return fields(r, checkRequestFields, func(i int) bool {
		var ok bool
		switch i {
		case 0:
			req.Tenant, ok = r.Str()
		case 1:
			req.Dims, ok = readStrMap(r)
		case 2:
			req.Groups, ok = readStrs(r)
		case 3:
			ok = readAmounts(r, &req.Request)
		case 4:
			req.AfterSeq, ok = r.Uint()
		}
		return ok
	})
}

// readStrMap reads a non-empty map of strings with sorted keys.
func readStrMap(r *mp.Reader) (map[string]string, bool) {
	n, ok := r.MapLen()
	if !ok || n == 0 {
		return nil, false
	}
	m := make(map[string]string, n)
	prev := ""
	for j := range n {
		k, ok1 := r.Str()
		v, ok2 := r.Str()
		if !ok1 || !ok2 || (j > 0 && k <= prev) {
			return nil, false
		}
		m[k] = v
		prev = k
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

func readAmounts(r *mp.Reader, a *events.Amounts) bool {
	return fields(r, events.AmountFieldNames[:], func(i int) bool {
		if i == 5 {
			n, ok := r.MapLen()
			if !ok || n == 0 {
				return false
			}
			a.Actions = make(events.Counts, n)
			prev := ""
			for j := range n {
				k, ok1 := r.Str()
				v, ok2 := r.Int()
				if !ok1 || !ok2 || (j > 0 && k <= prev) {
					return false
				}
				a.Actions[k] = v
				prev = k
			}
			return true
		}
		v, ok := r.Int()
		switch i {
		case 0:
			a.Tokens = v
		case 1:
			a.InputTokens = v
		case 2:
			a.OutputTokens = v
		case 3:
			a.Requests = v
		case 4:
			a.Cost = v
		}
		return ok
	})
}

var checkReplyFields = []string{"allowed", "code", "reason", "message", "retry_until", "retry_after", "warning", "limits", "applied_seq"}

func readCheckReply(r *mp.Reader, rep *CheckReply) bool {
	return fields(r, checkReplyFields, func(i int) bool {
		var ok bool
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
			if c, _ := r.Peek(); c == mp.Nil {
				r.Off++
				rep.Limits, ok = nil, true
				break
			}
			var n int
			if n, ok = r.ArrayLen(); !ok {
				return false
			}
			rep.Limits = make([]LimitStatus, n)
			for j := range rep.Limits {
				if !readLimitStatus(r, &rep.Limits[j]) {
					return false
				}
			}
		case 8:
			rep.AppliedSeq, ok = r.Uint()
		}
		return ok
	})
}

var limitStatusFields = []string{"quota", "split", "metric", "window", "enforcement", "limit", "used", "reserved", "requested", "remaining", "percent_used", "warning", "exceeded", "window_start", "resets_at", "resets_in"}

func readLimitStatus(r *mp.Reader, l *LimitStatus) bool {
	return fields(r, limitStatusFields, func(i int) bool {
		var ok bool
		switch i {
		case 0:
			l.Quota, ok = r.StrIn(0)
		case 1:
			l.Split, ok = r.StrIn(1)
		case 2:
			var s string
			s, ok = r.StrIn(2)
			l.Metric = events.Metric(s)
		case 3:
			ok = readWindow(r, &l.Window)
		case 4:
			l.Enforcement, ok = r.StrIn(3)
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
			t, ok = r.Time()
			l.WindowStart = &t
		case 14:
			l.ResetsAt, ok = r.Time()
		case 15:
			l.ResetsIn, ok = r.Int()
		}
		return ok
	})
}

var windowFields = []string{"kind", "unit", "seconds", "tz"}

func readWindow(r *mp.Reader, w *events.Window) bool {
	return fields(r, windowFields, func(i int) bool {
		var ok bool
		switch i {
		case 0:
			var s string
			s, ok = r.StrIn(4)
			w.Kind = events.WindowKind(s)
		case 1:
			w.Unit, ok = r.StrIn(5)
		case 2:
			w.Seconds, ok = r.Int()
		case 3:
			w.TZ, ok = r.StrIn(6)
		}
		return ok
	})
}
