package api_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/ledgerworks/ledger/api"
	"github.com/ledgerworks/ledger/events"
)

var t0 = time.Date(2026, 3, 14, 15, 9, 26, 535897932, time.UTC)

var encodings = []api.Encoding{api.JSON, api.Msgpack}

func exampleCheck() api.CheckRequest {
	return api.CheckRequest{
		Tenant: "acme",
		Dims:   events.Dimensions{"user": "alice", "project": "p1", "model": "gemini-2.0-flash", "operation": "query"},
		Groups: []string{"research", "staff"},
		Request: events.Amounts{
			Tokens: 1500, InputTokens: 1200, OutputTokens: 300, Requests: 1, Cost: 4200,
			Actions: events.Counts{"ai_query": 1, "new_run": 1},
		},
		AfterSeq: 1 << 40,
	}
}

func exampleQuota() events.Quota {
	return events.Quota{
		ID:     "team-tokens",
		Scope:  map[string]string{"group": "research"},
		Split:  []string{"user"},
		Limits: []events.Limit{{Metric: events.MetricTokens, Max: 1_000_000, Window: events.Window{Kind: events.Calendar, Unit: events.UnitDay, TZ: "Europe/Berlin"}}},
		Costs:  events.Counts{"embedding": 5, "query": 1},
		// The rest at their zero values, as a client would send them.
		WarnPercent: 80,
	}
}

// messages returns one filled-in value of every message type, by name.
func messages() map[string]any {
	start := t0.Truncate(time.Hour)
	evs := []events.Event{
		events.New("evt-1", "acme", t0, events.Dimensions{"user": "alice"}, &events.UsageRecorded{Amounts: events.Amounts{InputTokens: 10, OutputTokens: 5, Actions: events.Counts{"new_run": 1}}}),
		events.New("evt-2", "acme", t0.Add(time.Second), nil, &events.ReservationCreated{Reservation: "r1", Estimate: events.Amounts{Tokens: 50}, ExpiresAt: t0.Add(time.Minute)}),
	}
	return map[string]any{
		"CheckRequest":       exampleCheck(),
		"RecordUsageRequest": api.RecordUsageRequest{Events: evs},
		"RecordUsageReply":   api.RecordUsageReply{Events: 2, Seq: 99},
		"TenantRequest":      api.TenantRequest{Tenant: "acme", AfterSeq: 7},
		"UsageReply": api.UsageReply{Tenant: "acme", AppliedSeq: 12,
			Totals: api.Totals{events.MetricTokens: 15, events.MetricCost: 9, events.ActionMetric("new_run"): 1}},
		"QuotaSetRequest": api.QuotaSetRequest{Tenant: "acme", Quota: exampleQuota()},
		"QuotaRequest":    api.QuotaRequest{Tenant: "acme", ID: "team-tokens", AfterSeq: 3},
		"QuotaReply":      api.QuotaReply{Quota: exampleQuota(), Since: t0, Seq: 4},
		"QuotaListReply":  api.QuotaListReply{Quotas: []api.QuotaReply{{Quota: exampleQuota(), Since: t0}}},
		"WriteReply":      api.WriteReply{Seq: 5},
		"CheckReply": api.CheckReply{
			Allowed: false, Code: events.CodeQuotaExceeded, Message: "tokens: 1,000,000 of 1,000,000 used", RetryAfter: 3600,
			Warning: true, AppliedSeq: 77,
			Limits: []api.LimitStatus{{
				Quota: "team-tokens", Split: "alice", Metric: events.MetricTokens,
				Window: events.Window{Kind: events.Calendar, Unit: events.UnitDay}, Enforcement: "hard",
				Limit: 1_000_000, Used: 999_000, Reserved: 500, Requested: 1500, Remaining: 500,
				PercentUsed: 99.95, Warning: true, Exceeded: true,
				WindowStart: &start, ResetsAt: start.Add(time.Hour), ResetsIn: 1834,
			}},
		},
		"ErrorReply": api.ErrorReply{Error: &events.Error{
			Code: events.CodeRetryLater, Message: "retry signalled", RetryAfter: 37, Suggestion: "wait",
			Details: map[string]any{"model": "gemini-2.0-flash"},
		}},
	}
}

func sortedNames(m map[string]any) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// normalize makes decoded values comparable: times in UTC (msgpack decodes
// them in the local zone) and empty maps and slices as nil (both encodings
// omit them).
func normalize(v reflect.Value) {
	if v.Type() == reflect.TypeOf(time.Time{}) {
		if v.CanSet() {
			v.Set(reflect.ValueOf(v.Interface().(time.Time).UTC()))
		}
		return
	}
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

// same reports whether two values of one message type are equal after
// normalization. It normalizes copies it owns through pointers.
func same(a, b any) bool {
	pa, pb := reflect.New(reflect.TypeOf(a)), reflect.New(reflect.TypeOf(b))
	pa.Elem().Set(reflect.ValueOf(a))
	pb.Elem().Set(reflect.ValueOf(b))
	normalize(pa.Elem())
	normalize(pb.Elem())
	return reflect.DeepEqual(pa.Elem().Interface(), pb.Elem().Interface())
}

// roundTrip encodes v and decodes it into a new value of its type.
func roundTrip(t *testing.T, enc api.Encoding, v any) ([]byte, any) {
	t.Helper()
	b, err := api.Encode(enc, v)
	if err != nil {
		t.Fatalf("Encode(%s, %T): %v", enc, v, err)
	}
	if got := api.Detect(b); got != enc {
		t.Fatalf("Detect(Encode(%s)) = %s", enc, got)
	}
	p := reflect.New(reflect.TypeOf(v))
	if err := api.Decode(b, p.Interface()); err != nil {
		t.Fatalf("Decode(%s, %T): %v\n%q", enc, v, err, b)
	}
	return b, p.Elem().Interface()
}

func TestRoundTripEveryMessage(t *testing.T) {
	msgs := messages()
	for _, name := range sortedNames(msgs) {
		for _, enc := range encodings {
			t.Run(name+"/"+enc.String(), func(t *testing.T) {
				v := msgs[name]
				_, got := roundTrip(t, enc, v)
				if !same(got, v) {
					t.Fatalf("round trip differs:\n got %+v\nwant %+v", got, v)
				}
			})
		}
	}
}

// Field names are the JSON names in both encodings.
func TestMsgpackUsesJSONNames(t *testing.T) {
	msgs := messages()
	for _, name := range sortedNames(msgs) {
		t.Run(name, func(t *testing.T) {
			v := msgs[name]
			jb, err := api.Encode(api.JSON, v)
			if err != nil {
				t.Fatal(err)
			}
			mb, err := api.Encode(api.Msgpack, v)
			if err != nil {
				t.Fatal(err)
			}
			var jm map[string]any
			if err := json.Unmarshal(jb, &jm); err != nil {
				t.Fatal(err)
			}
			var mm map[string]any
			if err := msgpack.Unmarshal(mb, &mm); err != nil {
				t.Fatal(err)
			}
			if jk, mk := keysOf(jm), keysOf(mm); !reflect.DeepEqual(jk, mk) {
				t.Fatalf("JSON fields %v, msgpack fields %v", jk, mk)
			}
		})
	}
}

func keysOf(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// A check request decodes the same from either encoding, and from JSON a
// producer writes by hand.
func TestDecodeCheckRequest(t *testing.T) {
	want := exampleCheck()
	hand := `  {"tenant":"acme","dims":{"user":"alice","project":"p1","model":"gemini-2.0-flash","operation":"query"},
		"groups":["research","staff"],"request":{"tokens":1500,"input_tokens":1200,"output_tokens":300,"requests":1,"cost":4200,
		"actions":{"new_run":1,"ai_query":1}},"after_seq":1099511627776,"ignored_future_field":true}`
	var got api.CheckRequest
	if err := api.Decode([]byte(hand), &got); err != nil {
		t.Fatal(err)
	}
	if !same(got, want) {
		t.Fatalf("hand-written JSON:\n got %+v\nwant %+v", got, want)
	}
	mb, err := msgpack.Marshal(map[string]any{
		"tenant": "acme", "dims": map[string]string{"user": "alice", "project": "p1", "model": "gemini-2.0-flash", "operation": "query"},
		"groups":    []string{"research", "staff"},
		"request":   map[string]any{"tokens": 1500, "input_tokens": 1200, "output_tokens": 300, "requests": 1, "cost": 4200, "actions": map[string]int64{"new_run": 1, "ai_query": 1}},
		"after_seq": uint64(1 << 40), "ignored_future_field": true,
	})
	if err != nil {
		t.Fatal(err)
	}
	got = api.CheckRequest{}
	if err := api.Decode(mb, &got); err != nil {
		t.Fatal(err)
	}
	if !same(got, want) {
		t.Fatalf("hand-built msgpack:\n got %+v\nwant %+v", got, want)
	}
}

func TestDetect(t *testing.T) {
	for _, tc := range []struct {
		body string
		want api.Encoding
	}{
		{"", api.JSON},
		{"{}", api.JSON},
		{"[]", api.JSON},
		{" \t\r\n{", api.JSON},
		{"\n[1]", api.JSON},
		{"\x80", api.Msgpack},
		{"\x81\xa6tenant\xa4acme", api.Msgpack},
		{"\xde\x00\x01", api.Msgpack},
		{" \x80", api.Msgpack},
		{"null", api.Msgpack}, // not an object: refused by the msgpack decoder
	} {
		if got := api.Detect([]byte(tc.body)); got != tc.want {
			t.Errorf("Detect(%q) = %s, want %s", tc.body, got, tc.want)
		}
	}
	if api.JSON.String() != "json" || api.Msgpack.String() != "msgpack" {
		t.Errorf("String() = %q, %q", api.JSON, api.Msgpack)
	}
}

func wantCode(t *testing.T, err error, want *events.Error) {
	t.Helper()
	var e *events.Error
	if !errors.As(err, &e) {
		t.Fatalf("got %T %v, want *events.Error with code %s", err, err, want.Code)
	}
	if !errors.Is(err, want) {
		t.Fatalf("got code %s (%v), want %s", e.Code, err, want.Code)
	}
}

func TestDecodeErrors(t *testing.T) {
	good, err := api.Encode(api.Msgpack, exampleCheck())
	if err != nil {
		t.Fatal(err)
	}
	mp := func(v any) []byte {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	unknownJSON := `{"events":[{"id":"e1","type":"usage.recorded.v1","tenant":"acme","time":"2026-03-14T15:09:26Z","data":{}},{"id":"e2","type":"usage.recorded.v0"}]}`
	unknownMP := mp(map[string]any{"events": []any{map[string]any{"v": 1, "id": "e1", "type": "nope.v1", "tenant": "acme", "time": 1, "data": map[string]any{}}}})
	for _, tc := range []struct {
		name string
		body []byte
		into any
		want *events.Error
	}{
		{"empty", nil, &api.CheckRequest{}, events.ErrMalformed},
		{"whitespace", []byte(" \n\t "), &api.CheckRequest{}, events.ErrMalformed},
		{"oversize", append([]byte(`{"tenant":"`), bytes.Repeat([]byte("a"), api.MaxRequestBytes)...), &api.CheckRequest{}, events.ErrTooLarge},
		{"json syntax", []byte(`{"tenant":`), &api.CheckRequest{}, events.ErrMalformed},
		{"json trailing garbage", []byte(`{"tenant":"acme"}}`), &api.CheckRequest{}, events.ErrMalformed},
		{"json wrong type", []byte(`{"tenant":7}`), &api.CheckRequest{}, events.ErrMalformed},
		{"json float amount", []byte(`{"request":{"tokens":1.5}}`), &api.CheckRequest{}, events.ErrMalformed},
		{"json negative seq", []byte(`{"after_seq":-1}`), &api.CheckRequest{}, events.ErrMalformed},
		{"json array for object", []byte(`[1,2]`), &api.CheckRequest{}, events.ErrMalformed},
		{"msgpack reserved code", []byte{0xc1}, &api.CheckRequest{}, events.ErrMalformed},
		{"msgpack truncated", good[:len(good)-3], &api.CheckRequest{}, events.ErrMalformed},
		{"msgpack wrong type", mp(map[string]any{"tenant": 7}), &api.CheckRequest{}, events.ErrMalformed},
		{"msgpack dims not a map", mp(map[string]any{"dims": []string{"a"}}), &api.CheckRequest{}, events.ErrMalformed},
		{"msgpack scalar", mp("acme"), &api.CheckRequest{}, events.ErrMalformed},
		{"json literal null", []byte("null"), &api.CheckRequest{}, events.ErrMalformed},
		{"unknown event type in JSON", []byte(unknownJSON), &api.RecordUsageRequest{}, events.ErrUnknownEventType},
		{"unknown event type in msgpack", unknownMP, &api.RecordUsageRequest{}, events.ErrUnknownEventType},
		{"event over MaxEventBytes", []byte(`{"events":[{"id":"` + strings.Repeat("x", events.MaxEventBytes) + `"}]}`), &api.RecordUsageRequest{}, events.ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := api.Decode(tc.body, tc.into)
			if err == nil {
				t.Fatalf("decoded %+v, want %s", tc.into, tc.want.Code)
			}
			wantCode(t, err, tc.want)
		})
	}
}

// The error reply carries the code, and the client maps it back to the same
// sentinel in either encoding.
func TestErrorReplyMapsBackToSentinel(t *testing.T) {
	for _, s := range []*events.Error{events.ErrMalformed, events.ErrInvalidArgument, events.ErrUnknownEventType, events.ErrTooLarge,
		events.ErrClockSkew, events.ErrQuotaExceeded, events.ErrRetryLater, events.ErrNotFound, events.ErrConflict,
		events.ErrUnavailable, events.ErrInternal} {
		for _, enc := range encodings {
			in := api.ErrorReply{Error: &events.Error{Code: s.Code, Message: "m", RetryAfter: 2, Suggestion: "s", Details: map[string]any{"field": "tenant"}}}
			_, out := roundTrip(t, enc, in)
			got := out.(api.ErrorReply).Error
			if got == nil || !errors.Is(got, s) || got.Message != "m" || got.RetryAfter != 2 || got.Suggestion != "s" || fmt.Sprint(got.Details["field"]) != "tenant" {
				t.Errorf("%s %s: got %+v", enc, s.Code, got)
			}
		}
	}
}

func TestEncodeIsDeterministic(t *testing.T) {
	build := func() []any {
		dims := events.Dimensions{}
		actions := events.Counts{}
		totals := api.Totals{}
		for i := 0; i < 32; i++ {
			dims[fmt.Sprintf("d%02d", i)] = fmt.Sprint(i)
			actions[fmt.Sprintf("a%02d", i)] = int64(i) << 20
			totals[events.ActionMetric(fmt.Sprintf("a%02d", i))] = int64(i)
		}
		c := exampleCheck()
		c.Dims, c.Request.Actions = dims, actions
		return []any{c, api.UsageReply{Tenant: "acme", Totals: totals}, api.ErrorReply{Error: &events.Error{Code: events.CodeInternal, Details: map[string]any{"a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "f": 6}}}}
	}
	for i, v := range build() {
		for _, enc := range encodings {
			first, err := api.Encode(enc, v)
			if err != nil {
				t.Fatal(err)
			}
			for n := 0; n < 30; n++ {
				again, err := api.Encode(enc, build()[i])
				if err != nil || !bytes.Equal(again, first) {
					t.Fatalf("%T in %s: encoding %d differs (%v)", v, enc, n, err)
				}
			}
		}
	}
}

// A RecordUsageRequest in msgpack carries each event in its canonical
// encoding, so what a client sends is what the stream stores.
func TestRecordUsageCarriesCanonicalEvents(t *testing.T) {
	req := messages()["RecordUsageRequest"].(api.RecordUsageRequest)
	b, err := api.Encode(api.Msgpack, req)
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Events []msgpack.RawMessage `msgpack:"events"`
	}
	if err := msgpack.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	if len(raw.Events) != len(req.Events) {
		t.Fatalf("%d events encoded, want %d", len(raw.Events), len(req.Events))
	}
	for i := range req.Events {
		want, err := req.Events[i].MarshalMsgpack()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(raw.Events[i], want) {
			t.Errorf("event %d is not in its canonical encoding", i)
		}
	}
}

// DecodeCheckRequest reuses the request's dimensions map, and nothing of
// the request it held before is left, whatever the next one's encoding.
func TestDecodeCheckRequestReusesItsMap(t *testing.T) {
	first := exampleCheck()
	second := api.CheckRequest{Tenant: "acme", Dims: events.Dimensions{"user": "bob"}, Request: events.Amounts{Tokens: 7}}
	var req api.CheckRequest
	for i, c := range []struct {
		enc  api.Encoding
		want api.CheckRequest
	}{{api.Msgpack, first}, {api.Msgpack, second}, {api.JSON, first}, {api.Msgpack, api.CheckRequest{Tenant: "acme"}}, {api.JSON, second}} {
		b, err := api.Encode(c.enc, c.want)
		if err != nil {
			t.Fatal(err)
		}
		before := reflect.ValueOf(req.Dims).Pointer()
		if err := api.DecodeCheckRequest(b, &req); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if !same(req, c.want) {
			t.Fatalf("request %d (%s):\n got %+v\nwant %+v", i, c.enc, req, c.want)
		}
		// Canonical msgpack reuses the map the previous request left.
		if c.enc == api.Msgpack && before != 0 && reflect.ValueOf(req.Dims).Pointer() != before {
			t.Errorf("request %d: a new dimensions map, not the reused one", i)
		}
	}
}
