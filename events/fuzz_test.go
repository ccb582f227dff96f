package events_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/ledgerworks/ledger/events"
)

// The fuzz targets are seeded from the golden files (all types, both
// encodings) and from testdata/fuzz/<FuzzName>/, which holds hand-written edge
// cases in Go's corpus format. Without -fuzz they run the seeds only, so they
// are part of every `go test`.
//
// Properties: decoding never panics; every error is an *events.Error; every
// decoded event that validates re-encodes canonically, decodes back to the
// same event and re-encodes to the same bytes, and survives JSON too.
//
// To fuzz: go test ./events -run '^$' -fuzz '^FuzzDecodeBatch$' -fuzztime 20s
// On go1.26 a duration -fuzztime can end in "context deadline exceeded" with
// no failing input written (golang/go#75804, a coordinator race); that is not
// a finding. A count such as -fuzztime 500000x avoids it.

func goldenSeeds(f *testing.F, ext string) [][]byte {
	f.Helper()
	var out [][]byte
	for _, typ := range events.Types() {
		out = append(out, readGolden(f, typ, ext))
	}
	return out
}

func FuzzDecodeBatch(f *testing.F) {
	mps, jss := goldenSeeds(f, "msgpack"), goldenSeeds(f, "json")
	for i := range mps {
		f.Add(append([]byte{0x91}, mps[i]...)) // msgpack array of one
		f.Add(jss[i])                          // one JSON object
	}
	f.Add(append([]byte{0x90 | byte(len(mps))}, bytes.Join(mps, nil)...))
	f.Add(append(append([]byte("["), bytes.Join(jss, []byte(","))...), ']'))
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, err := events.DecodeBatch(b)
		if err != nil {
			requireTypedError(t, err)
			return
		}
		if len(evs) > events.MaxBatchEvents {
			t.Fatalf("decoded %d events, limit %d", len(evs), events.MaxBatchEvents)
		}
		for i := range evs {
			checkRoundTrip(t, evs[i])
		}
	})
}

func FuzzEventJSON(f *testing.F) {
	for _, b := range goldenSeeds(f, "json") {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var e events.Event
		if err := e.UnmarshalJSON(b); err != nil {
			requireTypedError(t, err)
			return
		}
		checkRoundTrip(t, e)
	})
}

func FuzzEventMsgpack(f *testing.F) {
	for _, b := range goldenSeeds(f, "msgpack") {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var e events.Event
		if err := e.UnmarshalMsgpack(b); err != nil {
			requireTypedError(t, err)
			return
		}
		checkRoundTrip(t, e)
	})
}

func requireTypedError(t *testing.T, err error) {
	t.Helper()
	var e *events.Error
	if !errors.As(err, &e) {
		t.Fatalf("error is %T, not *events.Error: %v", err, err)
	}
	switch e.Code {
	case events.CodeMalformed, events.CodeInvalidArgument, events.CodeUnknownEventType, events.CodeTooLarge:
	default:
		t.Fatalf("decoding returned code %s: %v", e.Code, err)
	}
}

// checkRoundTrip checks that an event that validates survives the canonical
// msgpack encoding and the JSON encoding unchanged.
func checkRoundTrip(t *testing.T, e events.Event) {
	t.Helper()
	if e.Validate() != nil {
		return
	}
	b, err := e.MarshalMsgpack()
	if err != nil {
		t.Fatalf("valid event does not encode: %v\n%s", err, dump(e))
	}
	var back events.Event
	if err := back.UnmarshalMsgpack(b); err != nil {
		t.Fatalf("canonical encoding does not decode: %v\n%x", err, b)
	}
	if err := back.Validate(); err != nil {
		t.Fatalf("event no longer validates after a msgpack round trip: %v", err)
	}
	if !sameEvent(back, e) {
		t.Fatalf("msgpack round trip differs:\n got %s\nwant %s", dump(back), dump(e))
	}
	if again, err := back.MarshalMsgpack(); err != nil || !bytes.Equal(again, b) {
		t.Fatalf("re-encoding differs (%v):\n%x\n%x", err, again, b)
	}

	j, err := json.Marshal(e)
	if err != nil {
		t.Fatalf("valid event does not encode as JSON: %v\n%s", err, dump(e))
	}
	var fromJSON events.Event
	if err := fromJSON.UnmarshalJSON(j); err != nil {
		t.Fatalf("JSON encoding does not decode: %v\n%s", err, j)
	}
	if err := fromJSON.Validate(); err != nil {
		t.Fatalf("event no longer validates after a JSON round trip: %v\n%s", err, j)
	}
	if !sameEvent(fromJSON, e) {
		t.Fatalf("JSON round trip differs:\n got %s\nwant %s", dump(fromJSON), dump(e))
	}
}

// sameEvent compares events treating an empty map or slice as absent: the
// encodings omit both, and nothing reads the difference. The payloads are
// pointers, so it turns empty maps and slices of the callers' events into nil.
func sameEvent(a, b events.Event) bool {
	normalize(reflect.ValueOf(&a).Elem())
	normalize(reflect.ValueOf(&b).Elem())
	return reflect.DeepEqual(a, b)
}

func normalize(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			normalize(v.Elem())
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if f := v.Field(i); f.CanSet() {
				normalize(f)
			}
		}
	case reflect.Slice:
		if v.Len() == 0 {
			if !v.IsNil() && v.CanSet() {
				v.SetZero()
			}
			return
		}
		for i := 0; i < v.Len(); i++ {
			normalize(v.Index(i))
		}
	case reflect.Map:
		if v.Len() == 0 && !v.IsNil() && v.CanSet() {
			v.SetZero()
		}
	}
}
