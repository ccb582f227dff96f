package api_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/ledgerworks/ledger/api"
	"github.com/ledgerworks/ledger/events"
)

// FuzzDecodeCheckRequest feeds request bodies, JSON or msgpack, to Decode.
// Seeds: the example request in both encodings, a few edge cases, and
// testdata/fuzz/FuzzDecodeCheckRequest/.
//
// Properties: no panic; every error is an *events.Error with a bad-input
// code; a decoded request re-encodes in both encodings and decodes back: the
// same value through msgpack and through JSON, except that JSON replaces
// invalid UTF-8 (which msgpack may carry), so there the value is stable from
// the second pass on.
func FuzzDecodeCheckRequest(f *testing.F) {
	for _, enc := range encodings {
		for _, v := range []api.CheckRequest{exampleCheck(), {Tenant: "acme"}, {}} {
			b, err := api.Encode(enc, v)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzDecodeRequest[api.CheckRequest](t, b)
		reusedDecodeIsDecode(t, b)
	})
}

// reusedDecodeIsDecode: DecodeCheckRequest into a request that held another
// one answers exactly what Decode into a new request answers.
func reusedDecodeIsDecode(t *testing.T, b []byte) {
	var fresh api.CheckRequest
	want := api.Decode(b, &fresh)
	reused := api.CheckRequest{Tenant: "stale", Dims: events.Dimensions{"user": "stale", "zz": "stale"}, Groups: []string{"stale"}, AfterSeq: 9}
	got := api.DecodeCheckRequest(b, &reused)
	if (got == nil) != (want == nil) || (got != nil && got.Error() != want.Error()) {
		t.Fatalf("DecodeCheckRequest: %v; Decode: %v", got, want)
	}
	if want == nil && !same(reused, fresh) {
		t.Fatalf("DecodeCheckRequest into a used request:\n got %+v\nwant %+v", reused, fresh)
	}
}

// FuzzDecodeReserveRequest is FuzzDecodeCheckRequest for reserve requests.
// Seeds: an example in both encodings, a few edge cases, and
// testdata/fuzz/FuzzDecodeReserveRequest/.
func FuzzDecodeReserveRequest(f *testing.F) {
	ex := exampleCheck()
	for _, enc := range encodings {
		for _, v := range []api.ReserveRequest{
			{Tenant: ex.Tenant, Reservation: "r1", Dims: ex.Dims, Groups: ex.Groups, Estimate: ex.Request, TTLMs: 60_000},
			{Tenant: "acme", Reservation: "r1", Estimate: events.Amounts{Tokens: 100}}, {},
		} {
			b, err := api.Encode(enc, v)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Fuzz(fuzzDecodeRequest[api.ReserveRequest])
}

// FuzzDecodeReconcileRequest is FuzzDecodeCheckRequest for reconcile
// requests. Seeds: an example in both encodings, a few edge cases, and
// testdata/fuzz/FuzzDecodeReconcileRequest/.
func FuzzDecodeReconcileRequest(f *testing.F) {
	for _, enc := range encodings {
		for _, v := range []api.ReconcileRequest{
			{Tenant: "acme", Reservation: "r1", Actual: exampleCheck().Request},
			{Tenant: "acme", Reservation: "r1", Actual: events.Amounts{Requests: 1}}, {},
		} {
			b, err := api.Encode(enc, v)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Fuzz(fuzzDecodeRequest[api.ReconcileRequest])
}

// FuzzDecodeBatchRequest is FuzzDecodeCheckRequest for batch requests.
// Seeds: a batch of each operation in both encodings, and edge cases.
func FuzzDecodeBatchRequest(f *testing.F) {
	ex := exampleCheck()
	for _, enc := range encodings {
		for _, v := range []api.BatchRequest{
			{Ops: []api.BatchOp{
				{Reserve: &api.ReserveRequest{Tenant: ex.Tenant, Reservation: "r1", Dims: ex.Dims, Groups: ex.Groups, Estimate: ex.Request, TTLMs: 60_000}},
				{Reconcile: &api.ReconcileRequest{Tenant: "acme", Reservation: "r0", Actual: ex.Request}},
				{Release: &api.ReleaseRequest{Tenant: "acme", Reservation: "r2", Reason: "cancelled"}},
			}},
			{Ops: []api.BatchOp{{}}}, {Ops: []api.BatchOp{}}, {},
		} {
			b, err := api.Encode(enc, v)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Fuzz(fuzzDecodeRequest[api.BatchRequest])
}

// fuzzDecodeRequest checks the properties of FuzzDecodeCheckRequest for a
// request type T.
func fuzzDecodeRequest[T any](t *testing.T, b []byte) {
	var r T
	if err := api.Decode(b, &r); err != nil {
		var e *events.Error
		if !errors.As(err, &e) {
			t.Fatalf("error is %T, not *events.Error: %v", err, err)
		}
		if e.Code != events.CodeMalformed && e.Code != events.CodeTooLarge {
			t.Fatalf("decoding returned code %s: %v", e.Code, err)
		}
		return
	}

	mb, err := api.Encode(api.Msgpack, r)
	if err != nil {
		t.Fatalf("decoded request does not encode as msgpack: %v\n%+v", err, r)
	}
	var fromMP T
	if err := api.Decode(mb, &fromMP); err != nil {
		t.Fatalf("msgpack encoding does not decode: %v\n%x", err, mb)
	}
	if !same(fromMP, r) {
		t.Fatalf("msgpack round trip differs:\n got %+v\nwant %+v", fromMP, r)
	}
	if again, err := api.Encode(api.Msgpack, fromMP); err != nil || !bytes.Equal(again, mb) {
		t.Fatalf("msgpack re-encoding differs (%v)", err)
	}

	jb, err := api.Encode(api.JSON, r)
	if err != nil {
		t.Fatalf("decoded request does not encode as JSON: %v\n%+v", err, r)
	}
	var fromJSON T
	if err := api.Decode(jb, &fromJSON); err != nil {
		t.Fatalf("JSON encoding does not decode: %v\n%s", err, jb)
	}
	if api.Detect(b) == api.JSON && !same(fromJSON, r) {
		// From JSON input every string is valid UTF-8 already.
		t.Fatalf("JSON round trip differs:\n got %+v\nwant %+v", fromJSON, r)
	}
	// After one pass through JSON, the round trip is exact.
	jb2, err := api.Encode(api.JSON, fromJSON)
	if err != nil {
		t.Fatal(err)
	}
	var again T
	if err := api.Decode(jb2, &again); err != nil {
		t.Fatalf("JSON encoding does not decode: %v\n%s", err, jb2)
	}
	if !same(again, fromJSON) {
		t.Fatalf("second JSON round trip differs:\n got %+v\nwant %+v", again, fromJSON)
	}
}
