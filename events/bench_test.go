package events_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/ledgerworks/ledger/events"
)

// benchBatch returns n usage events of one tenant, as a producer batches
// them: distinct IDs and users, a model, input and output tokens.
func benchBatch(n int) []events.Event {
	at := time.Date(2026, 3, 14, 15, 9, 26, 535897932, time.UTC)
	evs := make([]events.Event, n)
	for i := range evs {
		evs[i] = events.New("bench-"+strconv.Itoa(i), "acme", at.Add(time.Duration(i)*time.Millisecond),
			events.Dimensions{events.DimUser: "u" + strconv.Itoa(i%100), events.DimModel: "gpt-4o"},
			&events.UsageRecorded{Amounts: events.Amounts{InputTokens: 1200 + int64(i), OutputTokens: 300, Requests: 1}})
	}
	return evs
}

// BenchmarkEncodeBatch encodes a producer's batch of 512 usage events into
// one stream message.
func BenchmarkEncodeBatch(b *testing.B) {
	evs := benchBatch(512)
	b.ReportAllocs()
	var size int
	for b.Loop() {
		data, err := events.EncodeBatch(evs)
		if err != nil {
			b.Fatal(err)
		}
		size = len(data)
	}
	b.ReportMetric(float64(b.N)*float64(len(evs))/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(size)/float64(len(evs)), "bytes/event")
}

// BenchmarkDecodeBatch decodes a stream message of 512 usage events, as the
// projector does for every message.
func BenchmarkDecodeBatch(b *testing.B) {
	data, err := events.EncodeBatch(benchBatch(512))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := events.DecodeBatch(data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)*512/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkValidate validates one usage event, as the producer and the
// projector do for every event.
func BenchmarkValidate(b *testing.B) {
	evs := benchBatch(64)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := evs[i%len(evs)].Validate(); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkBatchID hashes the IDs of a 512-event batch into its message ID.
func BenchmarkBatchID(b *testing.B) {
	evs := benchBatch(512)
	b.ReportAllocs()
	for b.Loop() {
		events.BatchID(evs)
	}
}
