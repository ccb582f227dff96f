package events

import (
	"bytes"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The hand-written codec (fastcodec.go) must write the bytes the reflection
// encoder writes, and decode exactly what the reflection decoder decodes;
// these tests check both on random events against the reflection codec,
// which stays the reference (and still decodes anything non-canonical).

func randString(r *rand.Rand, n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b)
}

// randLen picks a string length around every msgpack string header size.
func randLen(r *rand.Rand) int {
	switch r.IntN(10) {
	case 0:
		return 31 + r.IntN(3)
	case 1:
		return 255 + r.IntN(3)
	case 2:
		if r.IntN(20) == 0 {
			return 65535 + r.IntN(3)
		}
	}
	return 1 + r.IntN(12)
}

// randInt picks integers around every msgpack integer size, both signs.
func randInt(r *rand.Rand) int64 {
	edges := []int64{0, 1, 31, 32, 127, 128, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1, math.MaxInt64,
		-1, -32, -33, -128, -129, -32768, -32769, math.MinInt32, math.MinInt32 - 1, math.MinInt64}
	if r.IntN(2) == 0 {
		return edges[r.IntN(len(edges))]
	}
	return r.Int64() >> r.IntN(64)
}

func randAmounts(r *rand.Rand) Amounts {
	var a Amounts
	for _, p := range []*int64{&a.Tokens, &a.InputTokens, &a.OutputTokens, &a.Requests, &a.Cost} {
		if r.IntN(2) == 0 {
			*p = randInt(r)
		}
	}
	if r.IntN(3) == 0 {
		a.Actions = Counts{}
		for range 1 + r.IntN(15) {
			a.Actions[randString(r, 1+r.IntN(8))] = randInt(r)
		}
	}
	return a
}

func randEvent(r *rand.Rand) Event {
	e := Event{ID: randString(r, randLen(r)), Tenant: randString(r, 1+r.IntN(20)),
		Time: time.Unix(0, randInt(r)).UTC()}
	if r.IntN(4) != 0 {
		e.Dims = Dimensions{}
		for range 1 + r.IntN(16) {
			e.Dims[randString(r, 1+r.IntN(8))] = randString(r, randLen(r))
		}
	}
	if r.IntN(3) == 0 {
		for range 1 + r.IntN(18) {
			e.Groups = append(e.Groups, randString(r, randLen(r)))
		}
	}
	switch r.IntN(7) {
	case 0:
		e.Payload = &ReservationCreated{Reservation: randString(r, randLen(r)), Estimate: randAmounts(r), ExpiresAt: randTime(r)}
	case 4:
		e.Payload = &ReservationReconciled{Reservation: randString(r, randLen(r)), Actual: randAmounts(r)}
	case 5:
		p := &ReservationReleased{Reservation: randString(r, randLen(r))}
		if r.IntN(2) == 0 {
			p.Reason = randString(r, randLen(r))
		}
		e.Payload = p
	case 6:
		e.Payload = &ReservationExpired{Reservation: randString(r, randLen(r))}
	case 1:
		e.Payload = &UsageCorrected{Corrects: randString(r, 8), Delta: randAmounts(r)}
	default:
		e.Payload = &UsageRecorded{Amounts: randAmounts(r), Decided: r.IntN(2) == 0}
	}
	e.Type = e.Payload.EventType()
	return e
}

// randTime picks times in every form of the msgpack timestamp: 4, 8 and 12
// bytes, and the zero time.
func randTime(r *rand.Rand) time.Time {
	switch r.IntN(4) {
	case 0:
		return time.Time{}
	case 1:
		return time.Unix(r.Int64N(1<<32), 0).UTC()
	case 2:
		return time.Unix(r.Int64N(1<<34), r.Int64N(1e9)).UTC()
	}
	return time.Unix(r.Int64N(1<<40)-(1<<39), r.Int64N(1e9)).UTC()
}

// fastTypes are the event types the hand-written decoder takes.
var fastTypes = map[Type]bool{TypeUsageRecorded: true, TypeReservationCreated: true, TypeReservationReconciled: true,
	TypeReservationReleased: true, TypeReservationExpired: true}

func TestFastEncodeMatchesReflection(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	for i := range 1000 {
		e := randEvent(r)
		want, err := e.marshalReflect()
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.MarshalMsgpack()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("event %d (%s): fast encoding differs\n got %x\nwant %x", i, e.Type, got, want)
		}
		var back Event
		if err := back.UnmarshalMsgpack(got); err == nil {
			if !reflect.DeepEqual(back, e) {
				t.Fatalf("event %d: round trip\n got %+v\nwant %+v", i, back, e)
			}
		} else if len(got) <= MaxEventBytes {
			t.Fatalf("event %d: decode: %v", i, err)
		}
	}
	for range 50 {
		evs := make([]Event, r.IntN(40))
		for i := range evs {
			evs[i] = randEvent(r)
			evs[i].Dims = Dimensions{"user": randString(r, 5)} // keep batches small
			evs[i].Groups = nil
			evs[i].ID = randString(r, 10)
		}
		want, err := encodeBatchReflect(evs)
		if err != nil {
			t.Fatal(err)
		}
		got, err := EncodeBatch(evs)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("batch of %d: fast encoding differs\n got %x\nwant %x", len(evs), got, want)
		}
		checkFastDecode(t, got, true)
	}
}

// checkFastDecode fails if the fast decoder takes b and decodes it otherwise
// than the reflection decoder (or takes what the reflection decoder refuses).
// With mustTake it also fails when a batch of only fastTypes is not taken.
func checkFastDecode(t *testing.T, b []byte, mustTake bool) {
	t.Helper()
	fast, ok := fastDecodeBatch(b)
	if !ok && !mustTake {
		return // the reflection decoder decides, as before
	}
	want, err := decodeBatchReflect(b)
	if !ok {
		if err == nil {
			for _, e := range want {
				if !fastTypes[e.Type] {
					return
				}
			}
			t.Fatalf("fast decoder refused a canonical batch %x", b)
		}
		return
	}
	if err != nil {
		t.Fatalf("fast decoder took %x, which the reflection decoder refuses: %v", b, err)
	}
	if !reflect.DeepEqual(fast, want) {
		t.Fatalf("decoders disagree on %x\nfast %+v\nwant %+v", b, fast, want)
	}
}

// FuzzFastDecode: whatever the fast decoder takes, the reflection decoder
// decodes to the same events.
func FuzzFastDecode(f *testing.F) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		evs := []Event{randEvent(r), randEvent(r)}
		for i := range evs {
			evs[i].Dims = Dimensions{"model": "m", "user": randString(r, 3)}
			evs[i].Payload = &UsageRecorded{Amounts: randAmounts(r)}
			evs[i].Type = TypeUsageRecorded
		}
		b, err := EncodeBatch(evs)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	golden, _ := filepath.Glob(filepath.Join("testdata", "golden", "*.msgpack"))
	for _, g := range golden {
		b, err := os.ReadFile(g)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(append([]byte{0x91}, b...))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkFastDecode(t, b, false)
		var e Event
		if ev, ok := fastDecodeEvent(b); ok {
			if err := e.unmarshalReflect(b); err != nil {
				t.Fatalf("fast decoder took an event the reflection decoder refuses: %v", err)
			}
			if !reflect.DeepEqual(ev, e) {
				t.Fatalf("decoders disagree on one event %x", b)
			}
		}
	})
}

func TestFastDecodeGolden(t *testing.T) {
	golden, err := filepath.Glob(filepath.Join("testdata", "golden", "*.msgpack"))
	if err != nil || len(golden) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, g := range golden {
		b, err := os.ReadFile(g)
		if err != nil {
			t.Fatal(err)
		}
		fast := fastTypes[Type(strings.TrimSuffix(filepath.Base(g), ".msgpack"))]
		checkFastDecode(t, append([]byte{0x91}, b...), fast)
		if _, ok := fastDecodeEvent(b); ok != fast {
			t.Errorf("%s: fast decoder took it: %v", g, ok)
		}
	}
}

// BenchmarkCodecReflect encodes and decodes the batch of BenchmarkEncodeBatch
// and BenchmarkDecodeBatch with the reflection codec, the reference the
// hand-written one replaced, for a before/after in the same run.
func BenchmarkCodecReflect(b *testing.B) {
	at := time.Date(2026, 3, 14, 15, 9, 26, 535897932, time.UTC)
	evs := make([]Event, 512)
	for i := range evs {
		evs[i] = New("bench-"+strconv.Itoa(i), "acme", at.Add(time.Duration(i)*time.Millisecond),
			Dimensions{DimUser: "u" + strconv.Itoa(i%100), DimModel: "gpt-4o"},
			&UsageRecorded{Amounts: Amounts{InputTokens: 1200 + int64(i), OutputTokens: 300, Requests: 1}})
	}
	data, err := encodeBatchReflect(evs)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := encodeBatchReflect(evs); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)*512/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeBatchReflect(data); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)*512/b.Elapsed().Seconds(), "events/s")
	})
}

// BenchmarkReservationCodec encodes and decodes a decision batch of the
// reservation path (a reserve and a reconcile), by hand and by reflection.
func BenchmarkReservationCodec(b *testing.B) {
	at := time.Date(2026, 3, 14, 15, 9, 26, 535897932, time.UTC)
	dims := Dimensions{DimUser: "u17", DimModel: "gpt-4o"}
	evs := []Event{
		New("5IhNWrVTfkNLvTCVmKcBsJ", "acme", at, dims, &ReservationCreated{Reservation: "5IhNWrVTfkNLvTCVmKcBsJ", Estimate: Amounts{Tokens: 100}, ExpiresAt: at.Add(time.Minute)}),
		New("5IhNWrVTfkNLvTCVmKcBsJ:reconciled", "acme", at, dims, &ReservationReconciled{Reservation: "5IhNWrVTfkNLvTCVmKcBsJ", Actual: Amounts{Requests: 1}}),
	}
	data, err := EncodeBatch(evs)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		fn   func() error
	}{
		{"encode", func() error { _, err := EncodeBatch(evs); return err }},
		{"encode-reflect", func() error { _, err := encodeBatchReflect(evs); return err }},
		{"decode", func() error { _, err := DecodeBatch(data); return err }},
		{"decode-reflect", func() error { _, err := decodeBatchReflect(data); return err }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := c.fn(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
