package projections

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/ledgerworks/ledger/events"
)

func TestTenantCodecShape(t *testing.T) {
	if got := tenantShape(); got != tenantShapeWant {
		t.Fatalf("the tenant state's types changed, so encodeTenant falls back to reflection (slower, still correct).\n"+
			"Update appendReservation/appendClosed/appendCounterKey/appendAmounts in projections/tenantcodec.go for the new fields, then set tenantShapeWant to:\n%q", got)
	}
}

// appendClosed (the value of a settled reservation's key) decodes to what
// msgpack.Marshal's encoding decodes to, and with at most one dimension
// writes the same bytes.
func TestClosedCodecMatchesReflection(t *testing.T) {
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 12))
	for i := range 2000 {
		ten := randTenantState(r, 1+i%2*5)
		var want ClosedReservation
		for _, res := range ten.Reservations {
			want = ClosedReservation{Outcome: OutcomeExpired, At: res.ExpiresAt, Time: res.Time, Dims: res.Dims, Groups: res.Groups, Estimate: res.Estimate}
		}
		got := appendClosed(nil, &want)
		if len(want.Dims) <= 1 {
			if ref, err := msgpack.Marshal(&want); err != nil || !bytes.Equal(got, ref) {
				t.Fatalf("%d: encodings differ (%v)\n got %x\nwant %x", i, err, got, ref)
			}
		}
		ref, err := msgpack.Marshal(&want)
		if err != nil {
			t.Fatal(err)
		}
		var a, b ClosedReservation
		if err := msgpack.Unmarshal(got, &a); err != nil {
			t.Fatalf("%d: decode: %v", i, err)
		}
		if err := msgpack.Unmarshal(ref, &b); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("%d: decoded %+v, want %+v", i, a, b)
		}
	}
}

func randTenantState(r *rand.Rand, maxEntries int) *Tenant {
	str := func() string {
		return "x" + strconv.Itoa(r.IntN(1000)) + []string{"", "-long-enough-to-need-a-longer-string-header"}[r.IntN(2)]
	}
	i64 := func() int64 { return []int64{0, 1, -1, 1 << 40, -(1 << 62)}[r.IntN(5)] }
	tm := func() time.Time { return time.Unix(r.Int64N(1<<33), r.Int64N(1e9)*int64(r.IntN(2))).UTC() }
	dims := func() events.Dimensions {
		if r.IntN(3) == 0 {
			return nil
		}
		d := events.Dimensions{}
		for range 1 + r.IntN(maxEntries) {
			d[str()] = str()
		}
		return d
	}
	groups := func() []string {
		if r.IntN(2) == 0 {
			return nil
		}
		return []string{str(), str()}[:1+r.IntN(2)]
	}
	amounts := func() events.Amounts {
		a := events.Amounts{Tokens: i64(), InputTokens: i64(), OutputTokens: i64(), Requests: i64(), Cost: i64()}
		if r.IntN(3) == 0 {
			a.Actions = events.Counts{str(): i64() + 1, str(): 2}
		}
		return a
	}
	t := &Tenant{Name: str(), LastDecision: uint64(r.Int64N(1 << 40)), LastSettled: i64()}
	if r.IntN(4) > 0 {
		t.Reservations = map[string]*Reservation{}
		for range 1 + r.IntN(maxEntries) {
			res := &Reservation{ID: str(), Time: tm(), ExpiresAt: tm(), Dims: dims(), Groups: groups(), Estimate: amounts()}
			for range r.IntN(3) {
				res.Holds = append(res.Holds, Hold{Amount: i64(), Key: CounterKey{Tenant: str(), Quota: str(), Epoch: uint32(r.IntN(3)), Split: []string{"", "u1"}[r.IntN(2)], Limit: str(), Bucket: i64(), Reserved: r.IntN(2) == 0}})
			}
			t.Reservations[res.ID] = res
		}
	}
	if r.IntN(2) == 0 {
		ev := events.New("q", t.Name, tm(), nil, &events.QuotaSet{Quota: events.Quota{ID: "q1", Split: []string{"user"},
			Limits: []events.Limit{{Metric: events.MetricTokens, Max: 10, Window: events.Window{Kind: events.Rolling, Seconds: 60}}}}})
		Evolve(t, &ev, Meta{}, NewDeltas())
		use := events.New("u", t.Name, tm(), events.Dimensions{"user": "ann"}, &events.UsageRecorded{Amounts: events.Amounts{Tokens: 3}})
		Evolve(t, &use, Meta{}, NewDeltas())
		t.Epochs = map[string]uint32{"q1": 2}
	}
	return t
}

// encodeTenant decodes to exactly what msgpack.Marshal decodes to, and with
// at most one entry per map (so that map order cannot differ) it writes the
// same bytes.
func TestTenantCodecMatchesReflection(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 11))
	for i := range 2000 {
		maxEntries := 1
		if i%2 == 0 {
			maxEntries = 6
		}
		ten := randTenantState(r, maxEntries)
		got, err := encodeTenant(ten)
		if err != nil {
			t.Fatal(err)
		}
		want, err := msgpack.Marshal(ten)
		if err != nil {
			t.Fatal(err)
		}
		if maxEntries == 1 && !bytes.Equal(got, want) {
			t.Fatalf("tenant %d: encodings differ\n got %x\nwant %x", i, got, want)
		}
		var a, b Tenant
		if err := msgpack.Unmarshal(got, &a); err != nil {
			t.Fatalf("tenant %d: decode: %v", i, err)
		}
		if err := msgpack.Unmarshal(want, &b); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("tenant %d: decoded states differ\n got %+v\nwant %+v", i, a, b)
		}
	}
}

// BenchmarkEncodeTenant encodes a tenant holding 64 open reservations, as a
// busy tenant's commit does, by hand and by reflection.
func BenchmarkEncodeTenant(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	t := randTenantState(r, 1)
	t.Reservations = map[string]*Reservation{}
	for i := range 64 {
		t.Reservations["o"+strconv.Itoa(i)] = &Reservation{ID: "o" + strconv.Itoa(i), Time: time.Unix(1e9, 0), ExpiresAt: time.Unix(1e9+60, 0),
			Dims: events.Dimensions{"user": "u", "model": "gpt-4o"}, Estimate: events.Amounts{Tokens: 100},
			Holds: []Hold{{Key: CounterKey{Tenant: "t", Quota: "q", Split: "u", Limit: "tokens|calendar:day", Bucket: 1e9, Reserved: true}, Amount: 100}}}
	}
	b.Run("hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := encodeTenant(t); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reflect", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := msgpack.Marshal(t); err != nil {
				b.Fatal(err)
			}
		}
	})
}
