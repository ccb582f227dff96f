package events_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/ledgerworks/ledger/events"
)

// updateGolden creates golden files that do not exist yet. It is never set in
// CI. Existing golden files are never overwritten: they pin a format that is
// stored forever, so a test that disagrees with one means the code changed the
// format, not that the file is stale.
var updateGolden = flag.Bool("update-golden", false, "create missing testdata/golden files (never overwrites; never in CI)")

// t0 has nanoseconds and a zone-independent value, so a round trip that loses
// precision or keeps a local zone shows.
var t0 = time.Date(2026, 3, 14, 15, 9, 26, 535897932, time.UTC)

// exampleEvents returns one valid event of every type, in events.Types()
// order, using every field of its payload and of the envelope.
func exampleEvents() []events.Event {
	dims := func(kv ...string) events.Dimensions {
		d := events.Dimensions{}
		for i := 0; i < len(kv); i += 2 {
			d[kv[i]] = kv[i+1]
		}
		return d
	}
	call := dims(events.DimUser, "alice", events.DimProject, "p1", events.DimAgent, "planner",
		events.DimModel, "gemini-2.0-flash", events.DimLocation, "europe-west4", events.DimOperation, "query",
		events.DimSession, "sess-9")
	at := func(d time.Duration) time.Time { return t0.Add(d) }

	evs := []events.Event{
		events.New("evt-0001", "acme", at(0), call, &events.UsageRecorded{
			Amounts: events.Amounts{
				InputTokens: 1200, OutputTokens: 345, Requests: 1, Cost: 4210,
				Actions: map[string]int64{"ai_query": 1, "new_run": 2},
			},
			Decided: true,
		}),
		events.New("evt-0002", "acme", at(time.Second), dims(events.DimUser, "alice", events.DimProject, "p1"), &events.UsageCorrected{
			Corrects: "evt-0001",
			Delta:    events.Amounts{InputTokens: -200, Cost: -700, Actions: map[string]int64{"ai_query": -1}},
			Reason:   "double-billed retry",
		}),
		events.New("evt-0003", "acme", at(2*time.Second), call, &events.ReservationCreated{
			Reservation: "res-42",
			Estimate:    events.Amounts{Tokens: 8000, Requests: 1, Cost: 24000},
			ExpiresAt:   at(5 * time.Minute),
		}),
		events.New("evt-0004", "acme", at(3*time.Second), call, &events.ReservationReconciled{
			Reservation: "res-42",
			Actual:      events.Amounts{InputTokens: 5100, OutputTokens: 900, Requests: 1, Cost: 18000},
		}),
		events.New("evt-0005", "acme", at(4*time.Second), call, &events.ReservationReleased{
			Reservation: "res-43", Reason: "client cancelled",
		}),
		events.New("evt-0006", "acme", at(5*time.Second), call, &events.ReservationExpired{Reservation: "res-44"}),
		events.New("evt-0007", "acme", at(6*time.Second),
			dims(events.DimModel, "gemini-2.0-flash", events.DimLocation, "global", events.DimMetric, "input_token_count"),
			&events.RetrySignalled{
				RetryUntil:      at(43 * time.Second),
				RetryDelay:      "37s",
				QuotaMetric:     "generativelanguage.googleapis.com/generate_content_free_tier_input_token_count",
				QuotaID:         "GenerateContentInputTokensPerModelPerMinute-FreeTier",
				QuotaDimensions: map[string]string{"location": "global", "model": "gemini-2.0-flash"},
			}),
		events.New("evt-0008", "acme", at(7*time.Second),
			dims(events.DimModel, "gemini-2.0-flash", events.DimLocation, "global", events.DimMetric, "input_token_count"),
			&events.RetryCleared{}),
		events.New("evt-0009", "acme", at(8*time.Second), dims(events.DimProject, "p1", events.DimWorkflow, "wf-7"),
			&events.WorkflowBegun{Workflow: "wf-7"}),
		events.New("evt-0010", "acme", at(9*time.Second), dims(events.DimProject, "p1", events.DimWorkflow, "wf-7"),
			&events.WorkflowStepped{Workflow: "wf-7", Step: 3}),
		events.New("evt-0011", "acme", at(10*time.Second), dims(events.DimProject, "p1", events.DimWorkflow, "wf-7"),
			&events.WorkflowEnded{Workflow: "wf-7", Outcome: "succeeded"}),
		events.New("evt-0012", "acme", at(11*time.Second), nil, &events.QuotaSet{Quota: exampleQuota()}),
		events.New("evt-0013", "acme", at(12*time.Second), nil, &events.QuotaDeleted{Quota: "old-quota"}),
		events.New("evt-0014", "acme", at(13*time.Second), nil, &events.CounterReset{
			Quota: "team-tokens", Split: "alice", Reason: "support ticket 1234",
		}),
		events.New("evt-0015", "acme", at(14*time.Second), dims(events.DimProject, "p1"), &events.PlanSet{
			Project: "p1", RunTimeoutMs: 300000, SaveDataclips: true,
			RetentionDays: []int{7, 14, 30}, RetentionMessage: "Upgrade to keep runs longer",
		}),
	}
	evs[0].Groups = []string{"research", "staff"}
	evs[2].Groups = []string{"research"}
	return evs
}

// exampleQuota uses every field of a quota and every window kind.
func exampleQuota() events.Quota {
	return events.Quota{
		ID:    "team-tokens",
		Scope: map[string]string{events.DimGroup: "research", events.DimProject: "p1"},
		Split: []string{events.DimUser},
		Limits: []events.Limit{
			{Metric: events.MetricTokens, Max: 1_000_000, Window: events.Window{Kind: events.Sliding, Seconds: 3600}},
			{Metric: events.MetricCost, Max: 50_000_000, Window: events.Window{Kind: events.Calendar, Unit: events.UnitMonth, TZ: "Europe/Berlin"}},
			{Metric: events.ActionMetric("new_run"), Max: 100, Window: events.Window{Kind: events.Rolling, Unit: events.UnitDay}},
		},
		Costs:       map[string]int64{"embedding": 5, "query": 1, "vector_search": 10},
		WarnPercent: 80,
		Enforcement: events.Hard,
		MaxSteps:    50,
	}
}

func exampleOf(t testing.TB, typ events.Type) events.Event {
	t.Helper()
	for _, e := range exampleEvents() {
		if e.Type == typ {
			return e
		}
	}
	t.Fatalf("no example event of type %s", typ)
	return events.Event{}
}

// wantCode fails unless err is an *events.Error with code want that also
// matches the code's sentinel with errors.Is.
func wantCode(t testing.TB, err error, want *events.Error) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s", want.Code)
	}
	var e *events.Error
	if !errors.As(err, &e) {
		t.Fatalf("got %T %v, want *events.Error with code %s", err, err, want.Code)
	}
	if e.Code != want.Code || !errors.Is(err, want) {
		t.Fatalf("got code %s (%v), want %s", e.Code, err, want.Code)
	}
}

func mustMsgpack(t testing.TB, e *events.Event) []byte {
	t.Helper()
	b, err := e.MarshalMsgpack()
	if err != nil {
		t.Fatalf("MarshalMsgpack %s: %v", e.Type, err)
	}
	return b
}

func mustJSON(t testing.TB, e events.Event) []byte {
	t.Helper()
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatalf("MarshalJSON %s: %v", e.Type, err)
	}
	return b
}

func dump(v any) string {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Sprintf("%#v", v)
	}
	return string(b)
}

func TestExamplesCoverEveryType(t *testing.T) {
	evs := exampleEvents()
	types := events.Types()
	if len(evs) != len(types) {
		t.Fatalf("%d examples for %d types", len(evs), len(types))
	}
	seen := map[events.Type]bool{}
	for i, typ := range types {
		if seen[typ] {
			t.Errorf("events.Types() lists %s twice", typ)
		}
		seen[typ] = true
		if !typ.Known() {
			t.Errorf("events.Types() lists %s but it is not Known", typ)
		}
		if evs[i].Type != typ {
			t.Errorf("example %d is %s, want %s", i, evs[i].Type, typ)
		}
		if err := evs[i].Validate(); err != nil {
			t.Errorf("example %s does not validate: %v", typ, err)
		}
		p, ok := events.NewPayload(typ)
		if !ok || p.EventType() != typ {
			t.Errorf("NewPayload(%s) = %v, %v", typ, p, ok)
		}
	}
	if _, ok := events.NewPayload("usage.recorded.v0"); ok {
		t.Error("NewPayload accepts an unknown type")
	}
}

func TestRoundTripMsgpack(t *testing.T) {
	for _, e := range exampleEvents() {
		t.Run(string(e.Type), func(t *testing.T) {
			b := mustMsgpack(t, &e)
			var got events.Event
			if err := got.UnmarshalMsgpack(b); err != nil {
				t.Fatalf("UnmarshalMsgpack: %v", err)
			}
			if !reflect.DeepEqual(got, e) {
				t.Fatalf("round trip differs:\n got %s\nwant %s", dump(got), dump(e))
			}
			if got.Time.Location() != time.UTC {
				t.Errorf("decoded time is in %v, want UTC", got.Time.Location())
			}
		})
	}
}

func TestRoundTripJSON(t *testing.T) {
	for _, e := range exampleEvents() {
		t.Run(string(e.Type), func(t *testing.T) {
			b := mustJSON(t, e)
			var got events.Event
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatalf("UnmarshalJSON: %v", err)
			}
			if !reflect.DeepEqual(got, e) {
				t.Fatalf("round trip differs:\n got %s\nwant %s", dump(got), dump(e))
			}
		})
	}
}

// A producer's JSON in another zone decodes to the same instant, in UTC.
func TestJSONTimesDecodeToUTC(t *testing.T) {
	in := `{"id":"e1","type":"reservation.created.v1","tenant":"acme","time":"2026-03-14T16:09:26.535897932+01:00",
		"data":{"reservation":"r1","estimate":{"tokens":5},"expires_at":"2026-03-14T10:14:26.535897932-05:00"}}`
	var e events.Event
	if err := json.Unmarshal([]byte(in), &e); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(e.Time, t0) {
		t.Errorf("time = %v, want %v", e.Time, t0)
	}
	p := e.Payload.(*events.ReservationCreated)
	if want := t0.Add(5 * time.Minute); !reflect.DeepEqual(p.ExpiresAt, want) {
		t.Errorf("expires_at = %v, want %v", p.ExpiresAt, want)
	}
	if e.Type != events.TypeReservationCreated {
		t.Errorf("type = %s", e.Type)
	}
	// A missing "v" is the current version; another version is refused.
	var e2 events.Event
	err := json.Unmarshal([]byte(`{"v":2,"id":"e1","type":"retry.cleared.v1","tenant":"acme","time":"2026-03-14T16:09:26Z","data":{}}`), &e2)
	wantCode(t, err, events.ErrInvalidArgument)
}

func TestEncodeDecodeBatchMsgpack(t *testing.T) {
	want := exampleEvents()
	b, err := events.EncodeBatch(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := events.DecodeBatch(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("batch round trip differs:\n got %s\nwant %s", dump(got), dump(want))
	}
	// A batch is an array of canonical single-event encodings.
	var parts []msgpack.RawMessage
	if err := msgpack.Unmarshal(b, &parts); err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if one := mustMsgpack(t, &want[i]); !bytes.Equal(parts[i], one) {
			t.Errorf("batch element %d is not the canonical encoding of its event", i)
		}
	}
}

func TestDecodeBatchJSON(t *testing.T) {
	want := exampleEvents()
	arr, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := events.DecodeBatch(append([]byte(" \n\t"), arr...))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("JSON array differs:\n got %s\nwant %s", dump(got), dump(want))
	}
	one := mustJSON(t, want[0])
	got, err = events.DecodeBatch(one)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !reflect.DeepEqual(got[0], want[0]) {
		t.Fatalf("JSON object differs:\n got %s\nwant %s", dump(got), dump(want[0]))
	}
	got, err = events.DecodeBatch([]byte("[]"))
	if err != nil || len(got) != 0 {
		t.Fatalf("empty JSON array: %v, %v", got, err)
	}
}

func TestDecodeBatchErrors(t *testing.T) {
	good, err := events.EncodeBatch(exampleEvents())
	if err != nil {
		t.Fatal(err)
	}
	wire := func(typ string) map[string]any {
		return map[string]any{"v": 1, "id": "e1", "type": typ, "tenant": "acme", "time": t0.UnixNano(), "data": map[string]any{}}
	}
	mp := func(v any) []byte {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	minimal := `{"id":"e1","type":"retry.cleared.v1","tenant":"acme","time":"2026-03-14T15:09:26Z","data":{}}`
	tooMany := "[" + strings.TrimSuffix(strings.Repeat(minimal+",", events.MaxBatchEvents+1), ",") + "]"
	if len(tooMany) > events.MaxBatchBytes {
		t.Fatalf("test body for too many events is itself too large: %d bytes", len(tooMany))
	}
	oversize := append([]byte("["+minimal), bytes.Repeat([]byte(" "), events.MaxBatchBytes)...)
	oversize = append(oversize, ']')

	for _, tc := range []struct {
		name string
		body []byte
		want *events.Error
	}{
		{"empty", nil, events.ErrMalformed},
		{"json syntax", []byte(`{"id":"e1",`), events.ErrMalformed},
		{"json array syntax", []byte(`[` + minimal + `,]`), events.ErrMalformed},
		{"json wrong field type", []byte(`{"id":1,"type":"retry.cleared.v1"}`), events.ErrMalformed},
		{"json wrong payload type", []byte(`{"id":"e1","type":"usage.recorded.v1","tenant":"acme","time":"2026-03-14T15:09:26Z","data":{"tokens":"many"}}`), events.ErrMalformed},
		{"json bad time", []byte(`{"id":"e1","type":"retry.cleared.v1","tenant":"acme","time":"yesterday"}`), events.ErrMalformed},
		{"json trailing garbage", []byte(minimal + `}`), events.ErrMalformed},
		{"json unknown type", []byte(`{"id":"e1","type":"usage.recorded.v9","tenant":"acme","time":"2026-03-14T15:09:26Z"}`), events.ErrUnknownEventType},
		{"json unknown type in array", []byte(`[` + minimal + `,{"id":"e2","type":"nope","tenant":"acme","time":"2026-03-14T15:09:26Z"}]`), events.ErrUnknownEventType},
		{"json unsupported version in array", []byte(`[{"v":7,"id":"e2","type":"retry.cleared.v1"}]`), events.ErrInvalidArgument},
		{"json event over MaxEventBytes", []byte(`[{"id":"e1","type":"retry.cleared.v1","tenant":"acme","pad":"` + strings.Repeat("x", events.MaxEventBytes) + `"}]`), events.ErrTooLarge},
		{"json too many events", []byte(tooMany), events.ErrTooLarge},
		{"oversize body", oversize, events.ErrTooLarge},
		{"msgpack reserved code", []byte{0xc1}, events.ErrMalformed},
		{"msgpack nil", []byte{0xc0}, events.ErrMalformed},
		{"msgpack not an array", mp(wire("retry.cleared.v1")), events.ErrMalformed},
		{"msgpack element not a map", mp([]any{1, 2}), events.ErrMalformed},
		{"msgpack wrong field type", mp([]any{map[string]any{"v": 1, "id": 7}}), events.ErrMalformed},
		{"msgpack bad payload", mp([]any{map[string]any{"v": 1, "id": "e1", "type": "usage.recorded.v1", "tenant": "acme", "time": 1, "data": "x"}}), events.ErrMalformed},
		{"msgpack unknown type in batch", mp([]any{wire("retry.cleared.v1"), wire("retry.cleared.v7")}), events.ErrUnknownEventType},
		{"msgpack unsupported version", mp([]any{map[string]any{"v": 2, "type": "retry.cleared.v1", "data": map[string]any{}}}), events.ErrInvalidArgument},
		{"msgpack missing version", mp([]any{map[string]any{"type": "retry.cleared.v1", "data": map[string]any{}}}), events.ErrInvalidArgument},
		{"msgpack too many events", mp(make([]map[string]any, events.MaxBatchEvents+1)), events.ErrTooLarge},
		{"msgpack array header claims too many", []byte{0xdd, 0xff, 0xff, 0xff, 0xff}, events.ErrTooLarge},
		{"msgpack truncated", good[:len(good)/2], events.ErrMalformed},
		{"msgpack trailing bytes", append(append([]byte{}, good...), 0x91, 0xc0), events.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs, err := events.DecodeBatch(tc.body)
			if err == nil {
				t.Fatalf("decoded %d events, want %s", len(evs), tc.want.Code)
			}
			wantCode(t, err, tc.want)
		})
	}
}

// Every proper prefix of a batch is refused as malformed, never decoded in
// part and never a panic.
func TestDecodeBatchTruncatedEverywhere(t *testing.T) {
	good, err := events.EncodeBatch(exampleEvents()[:4])
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; n < len(good); n++ {
		evs, err := events.DecodeBatch(good[:n])
		if err == nil {
			t.Fatalf("prefix of %d/%d bytes decoded to %d events", n, len(good), len(evs))
		}
		var e *events.Error
		if !errors.As(err, &e) || e.Code != events.CodeMalformed {
			t.Fatalf("prefix of %d/%d bytes: %v, want malformed", n, len(good), err)
		}
	}
}

func TestSingleEventDecodeErrors(t *testing.T) {
	e := exampleOf(t, events.TypeUsageRecorded)
	b := mustMsgpack(t, &e)
	big := append([]byte(`{"id":"e1","pad":"`), bytes.Repeat([]byte("x"), events.MaxEventBytes)...)
	big = append(big, `"}`...)
	for _, tc := range []struct {
		name string
		run  func() error
		want *events.Error
	}{
		{"msgpack truncated", func() error { var e events.Event; return e.UnmarshalMsgpack(b[:len(b)-1]) }, events.ErrMalformed},
		{"msgpack garbage", func() error { var e events.Event; return e.UnmarshalMsgpack([]byte{0xc1, 0x00}) }, events.ErrMalformed},
		{"msgpack over MaxEventBytes", func() error {
			var e events.Event
			return e.UnmarshalMsgpack(make([]byte, events.MaxEventBytes+1))
		}, events.ErrTooLarge},
		{"json over MaxEventBytes", func() error { var e events.Event; return e.UnmarshalJSON(big) }, events.ErrTooLarge},
		{"json garbage", func() error { var e events.Event; return e.UnmarshalJSON([]byte(`{"id":`)) }, events.ErrMalformed},
		{"json unknown type", func() error { var e events.Event; return e.UnmarshalJSON([]byte(`{"type":"x.v1"}`)) }, events.ErrUnknownEventType},
		{"marshal msgpack without payload", func() error {
			_, err := (&events.Event{ID: "e1", Type: events.TypeUsageRecorded}).MarshalMsgpack()
			return err
		}, events.ErrInvalidArgument},
		{"marshal json without payload", func() error {
			_, err := events.Event{ID: "e1", Type: events.TypeUsageRecorded}.MarshalJSON()
			return err
		}, events.ErrInvalidArgument},
		{"encode batch too many", func() error {
			evs := make([]events.Event, events.MaxBatchEvents+1)
			for i := range evs {
				evs[i] = e
			}
			_, err := events.EncodeBatch(evs)
			return err
		}, events.ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) { wantCode(t, tc.run(), tc.want) })
	}
}

// wideEvents have maps of many keys, so an encoder that followed Go's map
// order would almost surely differ between two runs. reverse inserts the keys
// in the opposite order.
func wideEvents(reverse bool) []events.Event {
	dims := events.Dimensions{}
	actions := map[string]int64{}
	scope := map[string]string{}
	costs := map[string]int64{}
	for n := 0; n < 32; n++ {
		i := n
		if reverse {
			i = 31 - n
		}
		dims[fmt.Sprintf("d%02d", i)] = fmt.Sprintf("v%d", i*i)
		actions[fmt.Sprintf("a%02d", i)] = int64(i) << (i % 40)
		scope[fmt.Sprintf("s%02d", i)] = fmt.Sprintf("x%d", i)
		costs[fmt.Sprintf("op%02d", i)] = int64(i + 1)
	}
	q := exampleQuota()
	q.Scope, q.Costs = scope, costs
	return []events.Event{
		events.New("wide-1", "acme", t0, dims, &events.UsageRecorded{Amounts: events.Amounts{Tokens: 1, Actions: actions}}),
		events.New("wide-2", "acme", t0, dims, &events.QuotaSet{Quota: q}),
	}
}

func TestEncodingIsDeterministic(t *testing.T) {
	for k := range wideEvents(false) {
		e := wideEvents(false)[k]
		if err := e.Validate(); err != nil {
			t.Fatalf("wide event does not validate: %v", err)
		}
		first := mustMsgpack(t, &e)
		firstJSON := mustJSON(t, e)
		for i := 0; i < 50; i++ {
			again := wideEvents(i%2 == 1)[k] // rebuilt maps: a fresh iteration and insertion order
			if b := mustMsgpack(t, &again); !bytes.Equal(b, first) {
				t.Fatalf("%s: msgpack encoding %d differs from the first:\n%x\n%x", e.Type, i, b, first)
			}
			if b := mustJSON(t, again); !bytes.Equal(b, firstJSON) {
				t.Fatalf("%s: JSON encoding %d differs from the first", e.Type, i)
			}
		}
		var back events.Event
		if err := back.UnmarshalMsgpack(first); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back, e) {
			t.Fatalf("wide event round trip differs:\n got %s\nwant %s", dump(back), dump(e))
		}
	}
	b1, err1 := events.EncodeBatch(wideEvents(false))
	b2, err2 := events.EncodeBatch(wideEvents(true))
	if err1 != nil || err2 != nil || !bytes.Equal(b1, b2) {
		t.Fatalf("EncodeBatch is not deterministic (%v, %v)", err1, err2)
	}
}

// Golden files pin the stored format. They were written once with
// -update-golden and must NEVER be regenerated or edited: events written by
// older code are read forever. If this test fails, the code changed the
// format; fix the code (or add a new type version), not the file.
func goldenPath(typ events.Type, ext string) string {
	return filepath.Join("testdata", "golden", string(typ)+"."+ext)
}

func readGolden(t testing.TB, typ events.Type, ext string) []byte {
	t.Helper()
	b, err := os.ReadFile(goldenPath(typ, ext))
	if err != nil {
		t.Fatalf("golden file for %s: %v (a new type needs its golden files: go test ./events -run TestGolden -update-golden)", typ, err)
	}
	return b
}

// writeGoldenOnce creates a golden file that does not exist yet. It refuses to
// overwrite one: a golden file is written once in its life.
func writeGoldenOnce(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("created %s", path)
}

func TestGolden(t *testing.T) {
	if *updateGolden {
		for _, e := range exampleEvents() {
			writeGoldenOnce(t, goldenPath(e.Type, "msgpack"), mustMsgpack(t, &e))
			writeGoldenOnce(t, goldenPath(e.Type, "json"), mustJSON(t, e))
		}
	}
	for _, typ := range events.Types() {
		t.Run(string(typ), func(t *testing.T) {
			mp := readGolden(t, typ, "msgpack")
			js := readGolden(t, typ, "json")

			var fromMP events.Event
			if err := fromMP.UnmarshalMsgpack(mp); err != nil {
				t.Fatalf("decode golden msgpack: %v", err)
			}
			if fromMP.Type != typ {
				t.Fatalf("golden msgpack holds type %s", fromMP.Type)
			}
			if err := fromMP.Validate(); err != nil {
				t.Fatalf("golden msgpack event no longer validates: %v", err)
			}
			if again := mustMsgpack(t, &fromMP); !bytes.Equal(again, mp) {
				t.Fatalf("re-encoding golden msgpack differs:\n got %x\nwant %x", again, mp)
			}

			var fromJS events.Event
			if err := json.Unmarshal(js, &fromJS); err != nil {
				t.Fatalf("decode golden json: %v", err)
			}
			if again := mustJSON(t, fromJS); !bytes.Equal(again, js) {
				t.Fatalf("re-encoding golden json differs:\n got %s\nwant %s", again, js)
			}
			if !reflect.DeepEqual(fromJS, fromMP) {
				t.Fatalf("golden json and msgpack disagree:\n json %s\n msgpack %s", dump(fromJS), dump(fromMP))
			}
		})
	}
	// No stray golden file for a type the code no longer knows: types are
	// never removed, only superseded.
	files, err := filepath.Glob(filepath.Join("testdata", "golden", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		typ := events.Type(strings.TrimSuffix(strings.TrimSuffix(name, ".msgpack"), ".json"))
		if !typ.Known() {
			t.Errorf("golden file %s is for type %q, which events no longer knows", name, typ)
		}
	}
}
