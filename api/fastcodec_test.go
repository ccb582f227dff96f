package api

import (
	"bytes"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/ledgerworks/ledger/events"
)

// The check's hand-written codec (fastcodec.go) must write what the
// reflection encoder writes and decode what it decodes.

func TestCheckCodecShape(t *testing.T) {
	if got := checkShape(); got != checkShapeWant {
		t.Fatalf("the check's types changed, so their hand-written codec is off (slower, still correct).\n"+
			"Update appendCheck*/readCheck* in api/fastcodec.go for the new fields, then set checkShapeWant to:\n%q", got)
	}
}

func randStr(r *rand.Rand) string {
	n := []int{0, 1, 5, 31, 32, 255, 256, 65535, 65536}[r.IntN(9)]
	if n > 60000 && r.IntN(20) > 0 {
		n = 40
	}
	if r.IntN(3) > 0 {
		n = r.IntN(12)
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = "abcxyz_-019é"[r.IntN(12)]
	}
	return string(b)
}

func randI64(r *rand.Rand) int64 {
	edges := []int64{0, 1, -1, 127, 128, -32, -33, 255, 256, 65536, math.MaxInt64, math.MinInt64, math.MaxUint32 + 1}
	if r.IntN(2) == 0 {
		return edges[r.IntN(len(edges))]
	}
	return r.Int64() >> r.IntN(64)
}

func randTime(r *rand.Rand) time.Time {
	switch r.IntN(5) {
	case 0:
		return time.Time{}
	case 1:
		return time.Unix(r.Int64N(1<<32), 0).UTC()
	case 2:
		return time.Unix(r.Int64N(1<<34), r.Int64N(1e9)).UTC()
	case 3:
		return time.Unix(r.Int64N(1<<40)-(1<<39), r.Int64N(1e9)).UTC()
	}
	return time.Now().Add(time.Duration(r.Int64N(1e15)))
}

func randTimePtr(r *rand.Rand) *time.Time {
	if r.IntN(3) == 0 {
		return nil
	}
	t := randTime(r)
	return &t
}

func randDims(r *rand.Rand) events.Dimensions {
	if r.IntN(4) == 0 {
		return nil
	}
	d := events.Dimensions{}
	for range r.IntN(15) {
		d[randStr(r)] = randStr(r)
	}
	return d
}

func randAmounts(r *rand.Rand) events.Amounts {
	var a events.Amounts
	for _, p := range []*int64{&a.Tokens, &a.InputTokens, &a.OutputTokens, &a.Requests, &a.Cost} {
		if r.IntN(2) == 0 {
			*p = randI64(r)
		}
	}
	if r.IntN(3) == 0 {
		a.Actions = events.Counts{}
		for range r.IntN(14) {
			a.Actions[randStr(r)] = randI64(r)
		}
	}
	return a
}

func randCheckRequest(r *rand.Rand) CheckRequest {
	req := CheckRequest{Tenant: randStr(r), Dims: randDims(r), Request: randAmounts(r)}
	if r.IntN(3) == 0 {
		for range r.IntN(18) {
			req.Groups = append(req.Groups, randStr(r))
		}
	}
	if r.IntN(2) == 0 {
		req.AfterSeq = r.Uint64() >> r.IntN(64)
	}
	return req
}

func randCheckReply(r *rand.Rand) CheckReply {
	rep := CheckReply{Allowed: r.IntN(2) == 0, Code: events.Code(randStr(r)), Reason: randStr(r), Message: randStr(r),
		RetryUntil: randTimePtr(r), RetryAfter: randI64(r), Warning: r.IntN(2) == 0, AppliedSeq: r.Uint64() >> r.IntN(64)}
	switch r.IntN(4) {
	case 0:
	case 1:
		rep.Limits = []LimitStatus{}
	default:
		for range r.IntN(20) {
			rep.Limits = append(rep.Limits, LimitStatus{
				Quota: randStr(r), Split: randStr(r), Metric: events.Metric(randStr(r)),
				Window:      events.Window{Kind: events.WindowKind(randStr(r)), Unit: randStr(r), Seconds: randI64(r), TZ: randStr(r)},
				Enforcement: randStr(r), Limit: randI64(r), Used: randI64(r), Reserved: randI64(r), Requested: randI64(r), Remaining: randI64(r),
				PercentUsed: []float64{0, 1.5, -2, 1e300, math.Inf(1)}[r.IntN(5)], Warning: r.IntN(2) == 0, Exceeded: r.IntN(2) == 0,
				WindowStart: randTimePtr(r), ResetsAt: randTime(r), ResetsIn: randI64(r),
			})
		}
	}
	return rep
}

func checkSame(t *testing.T, v any, fresh func() any) {
	t.Helper()
	got, ok := encodeFast(v)
	if !ok {
		t.Fatalf("no fast encoding for %T", v)
	}
	want, err := encodeReflect(v)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%T: fast encoding differs\n got %x\nwant %x", v, got, want)
	}
	a, b := fresh(), fresh()
	if !decodeFast(got, a) {
		t.Fatalf("%T: fast decoder refused a canonical encoding %x", v, got)
	}
	if err := decodeReflect(got, b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("%T: decoders disagree\nfast %+v\nrefl %+v", v, a, b)
	}
}

func TestCheckCodecMatchesReflection(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 9))
	// What a ledger sends: well-known dimension names, metrics, windows and
	// enforcements (decoded without allocating), several window starts.
	ws, ws2 := time.Unix(1768435200, 0), time.Unix(1768471260, 5)
	known := CheckRequest{Tenant: "acme", Dims: events.Dimensions{"agent": "a", "location": "eu", "model": "gpt-4o", "operation": "chat", "project": "p", "session": "s", "user": "ana"}, Request: events.Amounts{Tokens: 500}}
	checkSame(t, known, func() any { return new(CheckRequest) })
	rep := CheckReply{Allowed: true, AppliedSeq: 3, Limits: []LimitStatus{
		{Quota: "q", Split: "ana", Metric: "tokens", Window: events.Window{Kind: "calendar", Unit: "day", TZ: "UTC"}, Enforcement: "hard", WindowStart: &ws},
		{Quota: "q", Split: "ana", Metric: "requests", Window: events.Window{Kind: "sliding", Seconds: 60}, Enforcement: "soft", WindowStart: &ws2},
		{Quota: "r", Metric: "concurrent", Window: events.Window{Kind: "rolling", Unit: "week"}, Enforcement: "hard"},
		{Quota: "r", Metric: "cost", Window: events.Window{Kind: "calendar", Unit: "month", TZ: "Europe/Berlin"}, Enforcement: "hard", WindowStart: &ws},
	}}
	checkSame(t, rep, func() any { return new(CheckReply) })
	for range 1000 {
		req := randCheckRequest(r)
		checkSame(t, req, func() any { return new(CheckRequest) })
		checkSame(t, &req, func() any { return new(CheckRequest) })
		rep := randCheckReply(r)
		checkSame(t, rep, func() any { return new(CheckReply) })
	}
}

// AppendEncode writes what Encode writes, after what dst holds, for the
// check's types (by hand) and every other type and encoding (through
// Encode).
func TestAppendEncodeMatchesEncode(t *testing.T) {
	ws := time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC)
	req := CheckRequest{Tenant: "acme", Dims: events.Dimensions{"user": "ana", "model": "gpt-4o"}, Request: events.Amounts{Tokens: 500}}
	rep := CheckReply{Allowed: true, AppliedSeq: 3, Limits: []LimitStatus{{Quota: "q", Split: "ana", Metric: "tokens",
		Window: events.Window{Kind: "calendar", Unit: "day"}, Enforcement: "hard", Limit: 10, Used: 2, Remaining: 8, PercentUsed: 20,
		WindowStart: &ws, ResetsAt: ws.Add(24 * time.Hour), ResetsIn: 3600}}}
	prefix := []byte("prefix")
	for _, enc := range []Encoding{Msgpack, JSON} {
		for _, v := range []any{req, &req, rep, &rep, TenantRequest{Tenant: "acme", AfterSeq: 3}} {
			want, err := Encode(enc, v)
			if err != nil {
				t.Fatal(err)
			}
			for _, dst := range [][]byte{nil, append([]byte(nil), prefix...), append(make([]byte, 0, 4096), prefix...)} {
				got, err := AppendEncode(dst, enc, v)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.HasPrefix(got, dst) || !bytes.Equal(got[len(dst):], want) {
					t.Fatalf("%v %T: AppendEncode(%q) = %x, want the prefix and %x", enc, v, dst, got, want)
				}
			}
		}
	}
}

// Decoding into a value that already holds something merges, as reflection
// does: the hand-written decoder leaves such values to it.
func TestCheckDecodeMergesIntoNonZero(t *testing.T) {
	b, err := Encode(Msgpack, CheckRequest{Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	req := CheckRequest{AfterSeq: 7}
	if err := Decode(b, &req); err != nil {
		t.Fatal(err)
	}
	if req.Tenant != "acme" || req.AfterSeq != 7 {
		t.Fatalf("request: %+v, want tenant acme and after_seq 7 kept", req)
	}
	b, err = Encode(Msgpack, CheckReply{Allowed: true, Limits: []LimitStatus{}})
	if err != nil {
		t.Fatal(err)
	}
	rep := CheckReply{AppliedSeq: 9}
	if err := Decode(b, &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.Allowed || rep.AppliedSeq != 0 || rep.Limits == nil {
		t.Fatalf("reply: %+v, want allowed, applied_seq 0 (present in the body) and empty limits", rep)
	}
}

// FuzzCheckDecode: whatever the fast decoder takes, reflection decodes the
// same.
func FuzzCheckDecode(f *testing.F) {
	r := rand.New(rand.NewPCG(4, 5))
	for range 10 {
		req := randCheckRequest(r)
		b, _ := encodeReflect(req)
		f.Add(b)
		rep := randCheckReply(r)
		b, _ = encodeReflect(rep)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var a, c CheckRequest
		if decodeFast(b, &a) {
			if err := decodeReflect(b, &c); err != nil || !reflect.DeepEqual(a, c) {
				t.Fatalf("check request: fast %+v, reflection %+v (%v)", a, c, err)
			}
		}
		var x, y CheckReply
		if decodeFast(b, &x) {
			if err := decodeReflect(b, &y); err != nil || !reflect.DeepEqual(x, y) {
				t.Fatalf("check reply: fast %+v, reflection %+v (%v)", x, y, err)
			}
		}
	})
}

func BenchmarkCheckCodec(b *testing.B) {
	now := time.Now()
	ws := now.Add(-time.Hour)
	req := CheckRequest{Tenant: "acme", Dims: events.Dimensions{"user": "u17", "model": "gpt-4o"}, Request: events.Amounts{Tokens: 500}}
	ls := LimitStatus{Quota: "bench", Split: "u17", Metric: "tokens", Window: events.Window{Kind: "calendar", Unit: "day", TZ: "UTC"}, Enforcement: "hard",
		Limit: 1 << 40, Used: 12345, Requested: 500, Remaining: 1<<40 - 12345, PercentUsed: 0.01, WindowStart: &ws, ResetsAt: now, ResetsIn: 3600}
	rep := CheckReply{Allowed: true, Limits: []LimitStatus{ls, ls}, AppliedSeq: 123456}
	reqB, _ := Encode(Msgpack, req)
	repB, _ := Encode(Msgpack, rep)
	var buf []byte
	for _, c := range []struct {
		name string
		fn   func()
	}{
		{"request/encode", func() { Encode(Msgpack, req) }},
		{"request/encode-reflect", func() { encodeReflect(req) }},
		{"request/decode", func() { var v CheckRequest; Decode(reqB, &v) }},
		{"request/decode-reflect", func() { var v CheckRequest; decodeReflect(reqB, &v) }},
		{"reply/encode", func() { Encode(Msgpack, rep) }},
		{"reply/encode-reflect", func() { encodeReflect(rep) }},
		{"reply/decode", func() { var v CheckReply; Decode(repB, &v) }},
		{"reply/decode-reflect", func() { var v CheckReply; decodeReflect(repB, &v) }},
		// What the client and the service do: encode into a buffer they
		// reuse (a NATS publish copies the body).
		{"request/append", func() { buf, _ = AppendEncode(buf[:0], Msgpack, &req) }},
		{"reply/append", func() { buf, _ = AppendEncode(buf[:0], Msgpack, &rep) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.fn()
			}
		})
	}
}
