package events

import (
	"bytes"
	"strconv"
	"testing"
	"time"
)

// usageBatch is a producer's batch of n usage events of one tenant (as
// benchBatch in bench_test.go).
func usageBatch(n int) []Event {
	at := time.Date(2026, 3, 14, 15, 9, 26, 535897932, time.UTC)
	evs := make([]Event, n)
	for i := range evs {
		evs[i] = New("bench-"+strconv.Itoa(i), "acme", at.Add(time.Duration(i)*time.Millisecond),
			Dimensions{DimUser: "u" + strconv.Itoa(i%100), DimModel: "gpt-4o"},
			&UsageRecorded{Amounts: Amounts{InputTokens: 1200 + int64(i), OutputTokens: 300, Requests: 1, Actions: Counts{"search": 1}}})
	}
	return evs
}

// TestUsagePathOneCodec: a usage event goes from Producer.Record to the
// stream and on to the projector through one codec, once each way. The
// producer's EncodeBatch writes the batch by hand in one allocation (the
// reflection encoder would allocate per event), to the bytes the reflection
// encoder writes; the projector's DecodeBatch takes them by hand, with no
// fallback to reflection.
func TestUsagePathOneCodec(t *testing.T) {
	evs := usageBatch(512)
	got, err := EncodeBatch(evs)
	if err != nil {
		t.Fatal(err)
	}
	want, err := encodeBatchReflect(evs)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the hand-written encoding of a usage batch differs from the reflection encoder's")
	}
	if n := testing.AllocsPerRun(10, func() { EncodeBatch(evs) }); n != 1 {
		t.Errorf("EncodeBatch of 512 usage events: %v allocations, want 1 (the buffer)", n)
	}
	dec, ok := fastDecodeBatch(got)
	if !ok {
		t.Fatal("the hand-written decoder refused a producer's usage batch: it would go through reflection")
	}
	for i := range dec {
		if !sameWire(t, &dec[i], &evs[i]) {
			t.Fatalf("event %d: decoded %+v, want %+v", i, dec[i], evs[i])
		}
	}
}

func sameWire(t *testing.T, a, b *Event) bool {
	t.Helper()
	x, err := a.MarshalMsgpack()
	if err != nil {
		t.Fatal(err)
	}
	y, err := b.MarshalMsgpack()
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(x, y)
}

// BenchmarkUsagePath is what a usage event costs in codec and checks on its
// way from Producer.Record to the stream (Validate, EncodeBatch, BatchID) and
// from the stream into the projector's fold (DecodeBatch, Validate), per
// batch of 512, with the codec in use (hand) and with the reflection codec
// for comparison (reflect).
func BenchmarkUsagePath(b *testing.B) {
	evs := usageBatch(512)
	for _, c := range []struct {
		name   string
		encode func([]Event) ([]byte, error)
		decode func([]byte) ([]Event, error)
	}{
		{"hand", EncodeBatch, DecodeBatch},
		{"reflect", encodeBatchReflect, decodeBatchReflect},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				for i := range evs {
					if err := evs[i].Validate(); err != nil {
						b.Fatal(err)
					}
				}
				data, err := c.encode(evs)
				if err != nil {
					b.Fatal(err)
				}
				_ = BatchID(evs)
				dec, err := c.decode(data)
				if err != nil {
					b.Fatal(err)
				}
				for i := range dec {
					if err := dec[i].Validate(); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/512, "ns/event")
		})
	}
}
