package api

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/ledgerworks/ledger/events"
)

// The reservation path's hand-written codec (fastcodec_write.go) must write
// what the reflection encoder writes and decode what it decodes.

func TestWriteCodecShape(t *testing.T) {
	if got := writeShape(); got != writeShapeWant {
		t.Fatalf("the reservation path's types changed, so their hand-written codec is off (slower, still correct).\n"+
			"Update the append*/read* functions in api/fastcodec_write.go for the new fields, then set writeShapeWant to:\n%q", got)
	}
}

func randGroups(r *rand.Rand) []string {
	if r.IntN(3) != 0 {
		return nil
	}
	var gs []string
	for range r.IntN(18) {
		gs = append(gs, randStr(r))
	}
	return gs
}

func randLimits(r *rand.Rand) []LimitStatus {
	switch r.IntN(4) {
	case 0:
		return nil
	case 1:
		return []LimitStatus{}
	}
	return randCheckReply(rand.New(rand.NewPCG(r.Uint64(), 1))).Limits
}

func randOutcome(r *rand.Rand) string {
	if r.IntN(2) == 0 {
		return []string{"created", "exists", "reconciled", "charged", "released", "expired", "consumed", ""}[r.IntN(8)]
	}
	return randStr(r)
}

func randReserveRequest(r *rand.Rand) ReserveRequest {
	return ReserveRequest{Tenant: randStr(r), Reservation: randStr(r), Dims: randDims(r), Groups: randGroups(r),
		Estimate: randAmounts(r), TTLMs: randI64(r)}
}

func randReserveReply(r *rand.Rand) ReserveReply {
	return ReserveReply{Reservation: randStr(r), Outcome: randOutcome(r), ExpiresAt: randTime(r),
		Seq: r.Uint64() >> r.IntN(64), Limits: randLimits(r), Warning: r.IntN(2) == 0}
}

func randReconcileRequest(r *rand.Rand) ReconcileRequest {
	return ReconcileRequest{Tenant: randStr(r), Reservation: randStr(r), Actual: randAmounts(r)}
}

func randDecisionReply(r *rand.Rand) DecisionReply {
	return DecisionReply{Outcome: randOutcome(r), Seq: r.Uint64() >> r.IntN(64), Limits: randLimits(r), Warning: r.IntN(2) == 0}
}

func TestWriteCodecMatchesReflection(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 10))
	// What the ledger and its clients send.
	exp := time.Date(2026, 1, 15, 10, 0, 0, 5, time.UTC)
	ws := time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC)
	lim := []LimitStatus{{Quota: "q", Split: "ana", Metric: "tokens", Window: events.Window{Kind: "calendar", Unit: "day"}, Enforcement: "hard",
		Limit: 1000, Used: 10, Reserved: 100, Requested: 100, Remaining: 890, PercentUsed: 11, WindowStart: &ws, ResetsAt: ws.Add(24 * time.Hour), ResetsIn: 3600}}
	for _, c := range []struct {
		v     any
		fresh func() any
	}{
		{ReserveRequest{Tenant: "acme", Reservation: "r1", Dims: events.Dimensions{"user": "ana", "model": "gpt-4o"}, Estimate: events.Amounts{Tokens: 100}}, func() any { return new(ReserveRequest) }},
		{ReserveReply{Reservation: "r1", Outcome: "created", ExpiresAt: exp, Seq: 42, Limits: lim}, func() any { return new(ReserveReply) }},
		{ReserveReply{Reservation: "r1", Outcome: "exists", ExpiresAt: exp}, func() any { return new(ReserveReply) }},
		{ReconcileRequest{Tenant: "acme", Reservation: "r1", Actual: events.Amounts{Requests: 1}}, func() any { return new(ReconcileRequest) }},
		{ReconcileRequest{}, func() any { return new(ReconcileRequest) }},
		{DecisionReply{Outcome: "reconciled", Seq: 43}, func() any { return new(DecisionReply) }},
		{DecisionReply{}, func() any { return new(DecisionReply) }},
	} {
		checkSame(t, c.v, c.fresh)
	}
	for range 1000 {
		req := randReserveRequest(r)
		checkSame(t, req, func() any { return new(ReserveRequest) })
		checkSame(t, &req, func() any { return new(ReserveRequest) })
		rep := randReserveReply(r)
		checkSame(t, rep, func() any { return new(ReserveReply) })
		checkSame(t, &rep, func() any { return new(ReserveReply) })
		rec := randReconcileRequest(r)
		checkSame(t, rec, func() any { return new(ReconcileRequest) })
		checkSame(t, &rec, func() any { return new(ReconcileRequest) })
		dec := randDecisionReply(r)
		checkSame(t, dec, func() any { return new(DecisionReply) })
		checkSame(t, &dec, func() any { return new(DecisionReply) })
	}
}

// AppendEncode writes what Encode writes, after what dst holds.
func TestWriteAppendEncodeMatchesEncode(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	prefix := []byte("prefix")
	for range 50 {
		for _, v := range []any{randReserveRequest(r), randReserveReply(r), randReconcileRequest(r), randDecisionReply(r)} {
			// JSON goes through Encode whatever the type (and refuses the
			// random values' years past 9999).
			for _, enc := range []Encoding{Msgpack} {
				want, err := Encode(enc, v)
				if err != nil {
					t.Fatal(err)
				}
				for _, dst := range [][]byte{nil, append([]byte(nil), prefix...), append(make([]byte, 0, 1<<16), prefix...)} {
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
}

// Decoding into a value that already holds something merges, as reflection
// does: the hand-written decoder leaves such values to it.
func TestWriteDecodeMergesIntoNonZero(t *testing.T) {
	b, err := Encode(Msgpack, ReconcileRequest{Tenant: "acme", Reservation: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	req := ReconcileRequest{Actual: events.Amounts{Tokens: 7}}
	if err := Decode(b, &req); err != nil {
		t.Fatal(err)
	}
	if req.Tenant != "acme" || req.Actual.Tokens != 7 {
		t.Fatalf("request: %+v, want tenant acme and the tokens kept (an empty map of amounts merges)", req)
	}
	b, err = Encode(Msgpack, DecisionReply{Outcome: "charged"})
	if err != nil {
		t.Fatal(err)
	}
	rep := DecisionReply{Seq: 9}
	if err := Decode(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Outcome != "charged" || rep.Seq != 9 {
		t.Fatalf("reply: %+v, want outcome charged and seq 9 kept", rep)
	}
	exp := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b, err = Encode(Msgpack, map[string]string{"outcome": "created"}) // no expires_at
	if err != nil {
		t.Fatal(err)
	}
	rr := ReserveReply{ExpiresAt: exp}
	if err := Decode(b, &rr); err != nil {
		t.Fatal(err)
	}
	if rr.Outcome != "created" || !rr.ExpiresAt.Equal(exp) {
		t.Fatalf("reserve reply: %+v, want outcome created and the expiry kept", rr)
	}
}

// writeFuzzSeeds are canonical encodings of random values of every type of
// the reservation path.
func writeFuzzSeeds(f *testing.F) {
	r := rand.New(rand.NewPCG(6, 7))
	for range 5 {
		for _, v := range []any{randReserveRequest(r), randReserveReply(r), randReconcileRequest(r), randDecisionReply(r)} {
			b, err := encodeReflect(v)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
}

// FuzzWriteDecode: whatever the fast decoder takes, reflection decodes the
// same.
func FuzzWriteDecode(f *testing.F) {
	writeFuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, fresh := range []func() any{
			func() any { return new(ReserveRequest) }, func() any { return new(ReserveReply) },
			func() any { return new(ReconcileRequest) }, func() any { return new(DecisionReply) },
		} {
			a, c := fresh(), fresh()
			if decodeFast(b, a) {
				if err := decodeReflect(b, c); err != nil || !reflect.DeepEqual(a, c) {
					t.Fatalf("%T: fast %+v, reflection %+v (%v)", a, a, c, err)
				}
			}
		}
	})
}

func BenchmarkWriteCodec(b *testing.B) {
	now := time.Now()
	ws := now.Add(-time.Hour)
	req := ReserveRequest{Tenant: "acme", Reservation: "5IhNWrVTfkNLvTCVmKcBsJ", Dims: events.Dimensions{"user": "u17", "model": "gpt-4o"}, Estimate: events.Amounts{Tokens: 100}}
	ls := LimitStatus{Quota: "bench", Split: "u17", Metric: "tokens", Window: events.Window{Kind: "calendar", Unit: "day", TZ: "UTC"}, Enforcement: "hard",
		Limit: 1 << 40, Used: 12345, Requested: 100, Remaining: 1<<40 - 12345, PercentUsed: 0.01, WindowStart: &ws, ResetsAt: now, ResetsIn: 3600}
	rep := ReserveReply{Reservation: req.Reservation, Outcome: "created", ExpiresAt: now, Seq: 123456, Limits: []LimitStatus{ls}}
	rec := ReconcileRequest{Tenant: "acme", Reservation: req.Reservation, Actual: events.Amounts{Requests: 1}}
	dec := DecisionReply{Outcome: "reconciled", Seq: 123457}
	benchCodec(b, []codecCase{
		{"reserve-request", req, func() any { return new(ReserveRequest) }},
		{"reserve-reply", rep, func() any { return new(ReserveReply) }},
		{"reconcile-request", rec, func() any { return new(ReconcileRequest) }},
		{"decision-reply", dec, func() any { return new(DecisionReply) }},
	})
}

// codecCase is a value to benchmark the codecs with, and how to make a
// fresh value of its type to decode into.
type codecCase struct {
	name  string
	v     any
	fresh func() any
}

// benchCodec measures, for each case, appending the encoding into a reused
// buffer, encoding by reflection, and decoding both ways.
func benchCodec(b *testing.B, cases []codecCase) {
	var buf []byte
	for _, c := range cases {
		enc, _ := Encode(Msgpack, c.v)
		b.Run(c.name+"/append", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				buf, _ = AppendEncode(buf[:0], Msgpack, c.v)
			}
		})
		b.Run(c.name+"/encode-reflect", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				encodeReflect(c.v)
			}
		})
		b.Run(c.name+"/decode", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Decode(enc, c.fresh())
			}
		})
		b.Run(c.name+"/decode-reflect", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				decodeReflect(enc, c.fresh())
			}
		})
	}
}
