package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/ledgerworks/ledger/events"
)

// Encoding is how a message body is encoded.
type Encoding int

// Encodings.
const (
	JSON Encoding = iota
	Msgpack
)

// Detect returns the encoding of a body: JSON when it starts with '{' or '['.
func Detect(b []byte) Encoding {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '{', '[':
			return JSON
		}
		return Msgpack
	}
	return JSON
}

// MaxRequestBytes bounds a request body.
const MaxRequestBytes = events.MaxBatchBytes

// Decode decodes a request body into v, returning a typed malformed or
// too_large error.
func Decode(b []byte, v any) error {
	if len(b) > MaxRequestBytes {
		return &events.Error{Code: events.CodeTooLarge, Message: fmt.Sprintf("request is %d bytes, limit %d", len(b), MaxRequestBytes), Details: map[string]any{"size": len(b), "limit": MaxRequestBytes}}
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return &events.Error{Code: events.CodeMalformed, Message: "empty request body"}
	}
	var err error
	if Detect(b) == JSON {
		err = json.Unmarshal(b, v)
	} else if decodeFast(b, v) { // fastcodec*.go: the check and reservation path, by hand
		return nil
	} else {
		err = decodeReflect(b, v)
	}
	if err != nil {
		return events.AsDecodeError(err, Detect(b).String())
	}
	return nil
}

// Encode encodes v in the given encoding.
func Encode(enc Encoding, v any) ([]byte, error) {
	if enc == JSON {
		return json.Marshal(v)
	}
	if b, ok := encodeFast(v); ok { // fastcodec*.go: the check and reservation path, by hand
		return b, nil
	}
	return encodeReflect(v)
}

// AppendEncode appends the encoding of v to dst, like Encode. The check's
// messages are written straight into dst, so that a caller reusing dst
// (a NATS publish copies the body) encodes them without allocating; so are
// the reservation path's.
func AppendEncode(dst []byte, enc Encoding, v any) ([]byte, error) {
	if enc != JSON {
		if b, ok := appendFast(dst, v); ok {
			return b, nil
		}
	}
	b, err := Encode(enc, v)
	if err != nil {
		return nil, err
	}
	return append(dst, b...), nil
}

// encodeReflect is the msgpack encoding by reflection: every type but the
// check's and the reservation path's, and the reference the hand-written
// codecs are tested against.
func encodeReflect(v any) ([]byte, error) {
	var buf bytes.Buffer
	e := msgpack.NewEncoder(&buf)
	e.SetCustomStructTag("json")
	e.SetSortMapKeys(true)
	e.UseCompactInts(true)
	if err := e.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// decodeReflect is the msgpack decoding by reflection.
func decodeReflect(b []byte, v any) error {
	dec := msgpack.NewDecoder(bytes.NewReader(b))
	dec.SetCustomStructTag("json")
	return dec.Decode(v)
}

func (e Encoding) String() string {
	if e == JSON {
		return "json"
	}
	return "msgpack"
}

// Totals are amounts per metric. The msgpack encoder sorts the keys of
// map[string]string and map[string]any only, so Totals sorts its own: a reply
// is the same bytes every time.
type Totals map[events.Metric]int64

// EncodeMsgpack writes the totals with their metrics sorted.
func (t Totals) EncodeMsgpack(enc *msgpack.Encoder) error {
	if t == nil {
		return enc.EncodeNil()
	}
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, string(k))
	}
	sort.Strings(keys)
	if err := enc.EncodeMapLen(len(keys)); err != nil {
		return err
	}
	for _, k := range keys {
		if err := enc.EncodeString(k); err != nil {
			return err
		}
		if err := enc.Encode(t[events.Metric(k)]); err != nil {
			return err
		}
	}
	return nil
}
