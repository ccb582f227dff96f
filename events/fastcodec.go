package events

import (
	"fmt"
	"time"

	"github.com/ledgerworks/ledger/internal/mp"
)

func encodeError(t Type, err error) error { return fmt.Errorf("encode %s payload: %w", t, err) }

// A hand-written msgpack codec for the hot paths: the envelope of every
// event, the payload of usage.recorded.v1, which producers encode and the
// projector decodes for every usage event, and the payloads of the
// reservation events, which the ledger encodes and the projector decodes for
// every reserve and reconcile.
//
// It writes exactly the bytes the reflection encoder writes (struct fields as
// a map in declaration order, omitempty fields left out, map keys sorted,
// integers in their shortest form), so the stored format does not change;
// the golden files and a differential test against the reflection codec
// prove it. The decoder accepts only that canonical form, field by field in
// declaration order; on anything else (another key order, unknown keys,
// other integer or string codes, nil where a value was expected, an unknown
// type, a payload type without a fast decoder) it gives up and the
// reflection decoder decides, so every error and every unusual input is
// handled as before.

// appendEvent appends the canonical encoding of e.
func appendEvent(b []byte, e *Event) ([]byte, error) {
	if e.Payload == nil {
		return nil, invalid("data", "missing payload")
	}
	n := 6
	if len(e.Dims) > 0 {
		n++
	}
	if len(e.Groups) > 0 {
		n++
	}
	b = mp.AppendMapLen(b, n)
	b = append(b, mp.FixStr|1, 'v', Version)
	b = append(b, mp.FixStr|2, 'i', 'd')
	b = mp.AppendStr(b, e.ID)
	b = append(b, mp.FixStr|4, 't', 'y', 'p', 'e')
	b = mp.AppendStr(b, string(e.Type))
	b = append(b, mp.FixStr|6, 't', 'e', 'n', 'a', 'n', 't')
	b = mp.AppendStr(b, e.Tenant)
	if len(e.Dims) > 0 {
		b = append(b, mp.FixStr|4, 'd', 'i', 'm', 's')
		b = mp.AppendStrMap(b, e.Dims)
	}
	if len(e.Groups) > 0 {
		b = append(b, mp.FixStr|6, 'g', 'r', 'o', 'u', 'p', 's')
		b = mp.AppendStrs(b, e.Groups)
	}
	b = append(b, mp.FixStr|4, 't', 'i', 'm', 'e')
	b = mp.AppendInt(b, e.Time.UnixNano())
	b = append(b, mp.FixStr|4, 'd', 'a', 't', 'a')
	switch p := e.Payload.(type) {
	case *UsageRecorded:
		return appendUsageRecorded(b, p), nil
	case *ReservationCreated:
		return appendReservationCreated(b, p), nil
	case *ReservationReconciled:
		return appendReservationReconciled(b, p), nil
	case *ReservationReleased:
		return appendReservationReleased(b, p), nil
	case *ReservationExpired:
		return appendReservationExpired(b, p), nil
	}
	data, err := marshalMsgpack(e.Payload)
	if err != nil {
		return nil, encodeError(e.Type, err)
	}
	if len(data) == 0 {
		return append(b, mp.Nil), nil // what an empty RawMessage encodes to
	}
	return append(b, data...), nil
}

// Field names of Amounts (and UsageRecorded, which embeds it) in declaration
// order: the order of the encoding.
var usageFields = [...]string{"tokens", "input_tokens", "output_tokens", "requests", "cost", "actions", "decided"}

func appendUsageRecorded(b []byte, p *UsageRecorded) []byte {
	n := p.Amounts.MsgpackFields()
	if p.Decided {
		n++
	}
	b = mp.AppendMapLen(b, n)
	b = p.Amounts.AppendMsgpackFields(b, mp.AppendInt)
	if p.Decided {
		b = mp.AppendStr(b, usageFields[6])
		b = append(b, mp.True)
	}
	return b
}

// fastDecodeBatch decodes a canonical msgpack batch; ok is false for
// anything else.
func fastDecodeBatch(b []byte) ([]Event, bool) {
	r := &mp.Reader{B: b}
	n, ok := r.ArrayLen()
	if !ok || n > MaxBatchEvents {
		return nil, false
	}
	evs := make([]Event, n)
	for i := range evs {
		if !readEvent(r, &evs[i]) {
			return nil, false
		}
	}
	if !r.Done() {
		return nil, false
	}
	return evs, true
}

// fastDecodeEvent decodes one canonical event; ok is false for anything else.
func fastDecodeEvent(b []byte) (Event, bool) {
	r := &mp.Reader{B: b}
	var e Event
	if !readEvent(r, &e) || !r.Done() {
		return Event{}, false
	}
	return e, true
}

// Interning slots of the reader: the tenant, then a name and a value slot for
// each of the first maxInternDims dimensions, then the groups.
const (
	slotTenant    = 0
	maxInternDims = 8
	slotDims      = 1
	slotGroup     = slotDims + 2*maxInternDims
	_             = uint(mp.Slots - (slotGroup + 1)) // compile-time check: the slots fit
)

func dimSlots(j int) (name, value int) {
	j = min(j, maxInternDims-1)
	return slotDims + 2*j, slotDims + 2*j + 1
}

func readEvent(r *mp.Reader, e *Event) bool {
	n, ok := r.MapLen()
	if !ok || n < 6 || n > 8 {
		return false
	}
	if !r.Key("v") {
		return false
	}
	if v, ok := r.Byte(); !ok || v != Version {
		return false
	}
	if !r.Key("id") {
		return false
	}
	id, ok := r.StrBytes()
	if !ok {
		return false
	}
	e.ID = string(id)
	if !r.Key("type") {
		return false
	}
	tb, ok := r.StrBytes()
	if !ok {
		return false
	}
	switch Type(tb) {
	case TypeUsageRecorded:
		e.Type = TypeUsageRecorded
	case TypeReservationCreated:
		e.Type = TypeReservationCreated
	case TypeReservationReconciled:
		e.Type = TypeReservationReconciled
	case TypeReservationReleased:
		e.Type = TypeReservationReleased
	case TypeReservationExpired:
		e.Type = TypeReservationExpired
	default:
		return false // other types go through the reflection decoder
	}
	if !r.Key("tenant") {
		return false
	}
	if e.Tenant, ok = r.StrIn(slotTenant); !ok {
		return false
	}
	rest := n - 4
	if k, ok := r.PeekKey(); ok && string(k) == "dims" {
		r.Key("dims")
		m, ok := r.MapLen()
		if !ok || m == 0 || m > r.Left() {
			return false
		}
		e.Dims = make(Dimensions, m)
		prev := ""
		for j := range m {
			ks, vs := dimSlots(j)
			k, ok := r.StrIn(ks)
			if !ok || (j > 0 && k <= prev) {
				return false // canonical maps are sorted, without duplicates
			}
			v, ok := r.StrIn(vs)
			if !ok {
				return false
			}
			e.Dims[k] = v
			prev = k
		}
		rest--
	}
	if k, ok := r.PeekKey(); ok && string(k) == "groups" {
		r.Key("groups")
		m, ok := r.ArrayLen()
		if !ok || m == 0 || m > r.Left() {
			return false
		}
		e.Groups = make([]string, m)
		for j := range e.Groups {
			if e.Groups[j], ok = r.StrIn(slotGroup); !ok {
				return false
			}
		}
		rest--
	}
	if rest != 2 || !r.Key("time") {
		return false
	}
	ns, ok := r.Int()
	if !ok {
		return false
	}
	e.Time = time.Unix(0, ns).UTC()
	if !r.Key("data") {
		return false
	}
	e.Payload, ok = readPayload(r, e.Type)
	return ok
}

// readPayload reads the payload of an event of type t, one of those
// readEvent takes.
func readPayload(r *mp.Reader, t Type) (Payload, bool) {
	switch t {
	case TypeUsageRecorded:
		p := new(UsageRecorded)
		return p, readUsageRecorded(r, p)
	case TypeReservationCreated:
		p := new(ReservationCreated)
		return p, readReservationCreated(r, p)
	case TypeReservationReconciled:
		p := new(ReservationReconciled)
		return p, readReservationReconciled(r, p)
	case TypeReservationReleased:
		p := new(ReservationReleased)
		return p, readReservationReleased(r, p)
	case TypeReservationExpired:
		p := new(ReservationExpired)
		return p, readReservationExpired(r, p)
	}
	return nil, false
}

var usageKeys = mp.KeysOf(usageFields[:]...)

func readUsageRecorded(r *mp.Reader, p *UsageRecorded) bool {
	n, ok := r.MapOf(len(usageKeys))
	if !ok {
		return false
	}
	next := 0 // fields come in declaration order
	for range n {
		i, ok := r.Field(usageKeys, &next)
		if !ok {
			return false
		}
		if i == 6 {
			if p.Decided, ok = r.Bool(); !ok {
				return false
			}
		} else if !readAmountField(r, &p.Amounts, i) {
			return false
		}
	}
	return true
}
