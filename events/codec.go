package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/ledgerworks/ledger/internal/mp"
)

// Size limits. A batch must fit in one NATS message (1 MiB by default) with
// room for headers.
const (
	MaxEventBytes  = 8 << 10
	MaxBatchBytes  = 900 << 10
	MaxBatchEvents = 4096
)

// wireEvent is the msgpack form of an Event. Field order is the encoding
// order: never reorder, only append.
type wireEvent struct {
	V      int                `msgpack:"v"`
	ID     string             `msgpack:"id"`
	Type   Type               `msgpack:"type"`
	Tenant string             `msgpack:"tenant"`
	Dims   map[string]string  `msgpack:"dims,omitempty"`
	Groups []string           `msgpack:"groups,omitempty"`
	Time   int64              `msgpack:"time"` // Unix nanoseconds
	Data   msgpack.RawMessage `msgpack:"data"`
}

// jsonEvent is the JSON form of an Event.
type jsonEvent struct {
	V      int               `json:"v"`
	ID     string            `json:"id"`
	Type   Type              `json:"type"`
	Tenant string            `json:"tenant"`
	Dims   map[string]string `json:"dims,omitempty"`
	Groups []string          `json:"groups,omitempty"`
	Time   time.Time         `json:"time"`
	Data   json.RawMessage   `json:"data"`
}

// Counts maps names to integers (actions, cost multipliers). It exists for its
// msgpack encoding: the msgpack encoder sorts the keys of map[string]string
// and map[string]any only, so a plain map[string]int64 would be written in Go's
// random map order and the canonical encoding would not be canonical.
type Counts map[string]int64

// EncodeMsgpack writes the map with its keys sorted, each entry encoded as the
// default encoder would (compact integers when the encoder uses them).
func (c Counts) EncodeMsgpack(enc *msgpack.Encoder) error {
	if c == nil {
		return enc.EncodeNil()
	}
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if err := enc.EncodeMapLen(len(keys)); err != nil {
		return err
	}
	for _, k := range keys {
		if err := enc.EncodeString(k); err != nil {
			return err
		}
		if err := enc.Encode(c[k]); err != nil {
			return err
		}
	}
	return nil
}

// marshalMsgpack encodes v deterministically: map keys sorted, integers in
// their shortest form.
func marshalMsgpack(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := msgpack.GetEncoder()
	defer msgpack.PutEncoder(enc)
	enc.Reset(&buf)
	enc.SetSortMapKeys(true)
	enc.UseCompactInts(true)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (e *Event) toWire() (wireEvent, error) {
	if e.Payload == nil {
		return wireEvent{}, invalid("data", "missing payload")
	}
	data, err := marshalMsgpack(e.Payload)
	if err != nil {
		return wireEvent{}, fmt.Errorf("encode %s payload: %w", e.Type, err)
	}
	return wireEvent{
		V: Version, ID: e.ID, Type: e.Type, Tenant: e.Tenant,
		Dims: e.Dims, Groups: e.Groups, Time: e.Time.UnixNano(), Data: data,
	}, nil
}

func (w *wireEvent) toEvent() (Event, error) {
	if w.V != Version {
		return Event{}, &Error{Code: CodeInvalidArgument, Message: fmt.Sprintf("unsupported envelope version %d", w.V), Details: map[string]any{"field": "v"}}
	}
	p, ok := NewPayload(w.Type)
	if !ok {
		return Event{}, &Error{Code: CodeUnknownEventType, Message: fmt.Sprintf("unknown event type %q", w.Type), Details: map[string]any{"type": string(w.Type)}}
	}
	if err := msgpack.Unmarshal(w.Data, p); err != nil {
		return Event{}, malformed("msgpack", err)
	}
	normalizeTimes(p)
	return Event{
		ID: w.ID, Type: w.Type, Tenant: w.Tenant, Dims: w.Dims, Groups: w.Groups,
		Time: time.Unix(0, w.Time).UTC(), Payload: p,
	}, nil
}

// normalizeTimes puts decoded payload times in UTC so that a decoded event
// equals the one that was encoded, whatever the machine's zone.
func normalizeTimes(p Payload) {
	switch p := p.(type) {
	case *ReservationCreated:
		p.ExpiresAt = p.ExpiresAt.UTC()
	case *RetrySignalled:
		p.RetryUntil = p.RetryUntil.UTC()
	}
}

func malformed(format string, err error) *Error {
	return &Error{Code: CodeMalformed, Message: fmt.Sprintf("cannot decode %s: %v", format, err), Details: map[string]any{"format": format}}
}

// MarshalMsgpack returns the canonical encoding of the event: the bytes that
// are stored in the stream and hashed by auditors.
func (e *Event) MarshalMsgpack() ([]byte, error) {
	return appendEvent(nil, e)
}

// marshalReflect is MarshalMsgpack through the reflection encoder: the
// reference the hand-written codec (fastcodec.go) is tested against.
func (e *Event) marshalReflect() ([]byte, error) {
	w, err := e.toWire()
	if err != nil {
		return nil, err
	}
	return marshalMsgpack(&w)
}

// UnmarshalMsgpack decodes one event. It does not validate; call Validate.
func (e *Event) UnmarshalMsgpack(b []byte) error {
	if len(b) > MaxEventBytes {
		return tooLarge("event", len(b), MaxEventBytes)
	}
	if ev, ok := fastDecodeEvent(b); ok {
		*e = ev
		return nil
	}
	return e.unmarshalReflect(b)
}

// unmarshalReflect decodes one event with the reflection decoder.
func (e *Event) unmarshalReflect(b []byte) error {
	var w wireEvent
	if err := msgpack.Unmarshal(b, &w); err != nil {
		return malformed("msgpack", err)
	}
	ev, err := w.toEvent()
	if err != nil {
		return err
	}
	*e = ev
	return nil
}

// MarshalJSON encodes the event as JSON with its payload under "data".
func (e Event) MarshalJSON() ([]byte, error) {
	if e.Payload == nil {
		return nil, invalid("data", "missing payload")
	}
	data, err := json.Marshal(e.Payload)
	if err != nil {
		return nil, err
	}
	return json.Marshal(jsonEvent{
		V: Version, ID: e.ID, Type: e.Type, Tenant: e.Tenant,
		Dims: e.Dims, Groups: e.Groups, Time: e.Time.UTC(), Data: data,
	})
}

// UnmarshalJSON decodes one event. A missing "v" means the current version.
// It does not validate; call Validate.
func (e *Event) UnmarshalJSON(b []byte) error {
	if len(b) > MaxEventBytes {
		return tooLarge("event", len(b), MaxEventBytes)
	}
	var w jsonEvent
	if err := json.Unmarshal(b, &w); err != nil {
		return malformed("json", err)
	}
	if w.V == 0 {
		w.V = Version
	}
	if w.V != Version {
		return &Error{Code: CodeInvalidArgument, Message: fmt.Sprintf("unsupported envelope version %d", w.V), Details: map[string]any{"field": "v"}}
	}
	p, ok := NewPayload(w.Type)
	if !ok {
		return &Error{Code: CodeUnknownEventType, Message: fmt.Sprintf("unknown event type %q", w.Type), Details: map[string]any{"type": string(w.Type)}}
	}
	if len(w.Data) > 0 && !bytes.Equal(w.Data, []byte("null")) {
		if err := json.Unmarshal(w.Data, p); err != nil {
			return malformed("json", err)
		}
	}
	normalizeTimes(p)
	*e = Event{ID: w.ID, Type: w.Type, Tenant: w.Tenant, Dims: w.Dims, Groups: w.Groups, Time: w.Time.UTC(), Payload: p}
	return nil
}

func tooLarge(what string, n, max int) *Error {
	return &Error{Code: CodeTooLarge, Message: fmt.Sprintf("%s is %d bytes, limit %d", what, n, max), Details: map[string]any{"size": n, "limit": max}}
}

// encodeBatchReflect is EncodeBatch through the reflection encoder, for tests.
func encodeBatchReflect(evs []Event) ([]byte, error) {
	ws := make([]wireEvent, len(evs))
	for i := range evs {
		w, err := evs[i].toWire()
		if err != nil {
			return nil, err
		}
		ws[i] = w
	}
	return marshalMsgpack(ws)
}

// EncodeBatch encodes events as one stream message: a msgpack array of
// canonical events.
func EncodeBatch(evs []Event) ([]byte, error) {
	if len(evs) > MaxBatchEvents {
		return nil, &Error{Code: CodeTooLarge, Message: fmt.Sprintf("batch has %d events, limit %d", len(evs), MaxBatchEvents), Details: map[string]any{"events": len(evs), "limit": MaxBatchEvents}}
	}
	// A usage event takes ~145 bytes; the slack keeps a decision's batch of
	// one or two reservation events (~200-220 bytes each) from growing.
	b := make([]byte, 0, 160*len(evs)+128)
	b = mp.AppendArrayLen(b, len(evs))
	for i := range evs {
		var err error
		if b, err = appendEvent(b, &evs[i]); err != nil {
			return nil, err
		}
	}
	if len(b) > MaxBatchBytes {
		return nil, tooLarge("batch", len(b), MaxBatchBytes)
	}
	return b, nil
}

// DecodeBatch decodes a stream message or a request body holding events. It
// accepts a msgpack array (EncodeBatch), or JSON: one event object or an
// array of them. It does not validate; call Validate on each event.
func DecodeBatch(b []byte) ([]Event, error) {
	if len(b) > MaxBatchBytes {
		return nil, tooLarge("batch", len(b), MaxBatchBytes)
	}
	if len(b) == 0 {
		return nil, &Error{Code: CodeMalformed, Message: "empty body"}
	}
	switch firstNonSpace(b) {
	case '{':
		var e Event
		if err := json.Unmarshal(b, &e); err != nil {
			return nil, AsDecodeError(err, "json")
		}
		return []Event{e}, nil
	case '[':
		var es []Event
		if err := json.Unmarshal(b, &es); err != nil {
			return nil, AsDecodeError(err, "json")
		}
		if len(es) > MaxBatchEvents {
			return nil, &Error{Code: CodeTooLarge, Message: fmt.Sprintf("batch has %d events, limit %d", len(es), MaxBatchEvents), Details: map[string]any{"events": len(es), "limit": MaxBatchEvents}}
		}
		return es, nil
	}
	if evs, ok := fastDecodeBatch(b); ok {
		return evs, nil
	}
	return decodeBatchReflect(b)
}

// decodeBatchReflect decodes a msgpack batch with the reflection decoder: any
// batch the hand-written decoder does not take, and every error.
func decodeBatchReflect(b []byte) ([]Event, error) {
	var ws []wireEvent
	r := bytes.NewReader(b)
	dec := msgpack.NewDecoder(r)
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return nil, malformed("msgpack", err)
	}
	if n < 0 { // msgpack nil
		return nil, malformed("msgpack", errors.New("batch is nil, want an array of events"))
	}
	if n > MaxBatchEvents {
		return nil, &Error{Code: CodeTooLarge, Message: fmt.Sprintf("batch has %d events, limit %d", n, MaxBatchEvents), Details: map[string]any{"events": n, "limit": MaxBatchEvents}}
	}
	ws = make([]wireEvent, n)
	for i := range ws {
		if err := dec.Decode(&ws[i]); err != nil {
			return nil, malformed("msgpack", err)
		}
	}
	if r.Len() != 0 { // the decoder reads r directly, unbuffered
		return nil, malformed("msgpack", fmt.Errorf("%d bytes after the array of events", r.Len()))
	}
	evs := make([]Event, n)
	for i := range ws {
		ev, err := ws[i].toEvent()
		if err != nil {
			return nil, err
		}
		evs[i] = ev
	}
	return evs, nil
}

// AsDecodeError keeps an *Error raised by an element decoder (unknown type,
// too large) and wraps anything else as malformed.
func AsDecodeError(err error, format string) error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return malformed(format, err)
}

func firstNonSpace(b []byte) byte {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c
	}
	return 0
}
