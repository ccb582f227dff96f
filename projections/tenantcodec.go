package projections

import (
	"github.com/vmihailenco/msgpack/v5"

	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/internal/mp"
)

// encodeTenant encodes a tenant's state for the store: what msgpack.Marshal
// writes (the store reads it back with msgpack.Unmarshal), written by hand
// for the parts that grow with traffic (open and settled reservations), so
// that the commit of a busy tenant does not spend its time in reflection.
// Maps come out in Go's map order, as with msgpack.Marshal; the digest
// tools sort them. The small parts (quotas, epochs, rolling windows, retry
// signals, workflows, plans) still go through reflection.
//
// It is written for the fields the types have now: tenantShapeOK turns it
// off if they change (TestTenantCodecShape then says what to update).
func encodeTenant(t *Tenant) ([]byte, error) {
	if !tenantShapeOK {
		return msgpack.Marshal(t)
	}
	n := 1
	for _, set := range []bool{len(t.Quotas) > 0, len(t.Epochs) > 0, len(t.Rolling) > 0, len(t.Reservations) > 0,
		len(t.Retries) > 0, len(t.Workflows) > 0, len(t.Plans) > 0, t.LastDecision != 0, t.LastSettled != 0} {
		if set {
			n++
		}
	}
	b := make([]byte, 0, 256+160*len(t.Reservations))
	b = mp.AppendMapLen(b, n)
	b = mp.AppendStr(b, "name")
	b = mp.AppendStr(b, t.Name)
	reflected := func(name string, v any) error {
		sub, err := msgpack.Marshal(v)
		if err != nil {
			return err
		}
		b = mp.AppendStr(b, name)
		b = append(b, sub...)
		return nil
	}
	if len(t.Quotas) > 0 {
		if err := reflected("quotas", t.Quotas); err != nil {
			return nil, err
		}
	}
	if len(t.Epochs) > 0 {
		if err := reflected("epochs", t.Epochs); err != nil {
			return nil, err
		}
	}
	if len(t.Rolling) > 0 {
		if err := reflected("rolling", t.Rolling); err != nil {
			return nil, err
		}
	}
	if len(t.Reservations) > 0 {
		b = mp.AppendStr(b, "reservations")
		b = mp.AppendMapLen(b, len(t.Reservations))
		for id, r := range t.Reservations {
			b = mp.AppendStr(b, id)
			b = appendReservation(b, r)
		}
	}
	if len(t.Retries) > 0 {
		if err := reflected("retries", t.Retries); err != nil {
			return nil, err
		}
	}
	if len(t.Workflows) > 0 {
		if err := reflected("workflows", t.Workflows); err != nil {
			return nil, err
		}
	}
	if len(t.Plans) > 0 {
		if err := reflected("plans", t.Plans); err != nil {
			return nil, err
		}
	}
	if t.LastDecision != 0 {
		b = mp.AppendStr(b, "last_decision")
		b = mp.AppendUint64(b, t.LastDecision)
	}
	if t.LastSettled != 0 {
		b = mp.AppendStr(b, "last_settled")
		b = mp.AppendInt64(b, t.LastSettled)
	}
	return b, nil
}

func appendReservation(b []byte, r *Reservation) []byte {
	if r == nil {
		return append(b, mp.Nil)
	}
	n := 4
	for _, set := range []bool{len(r.Dims) > 0, len(r.Groups) > 0, len(r.Holds) > 0} {
		if set {
			n++
		}
	}
	b = mp.AppendMapLen(b, n)
	b = mp.AppendStr(b, "id")
	b = mp.AppendStr(b, r.ID)
	b = mp.AppendStr(b, "time")
	b = mp.AppendTime(b, r.Time)
	b = mp.AppendStr(b, "expires_at")
	b = mp.AppendTime(b, r.ExpiresAt)
	if len(r.Dims) > 0 {
		b = mp.AppendStr(b, "dims")
		b = mp.AppendStrMap(b, r.Dims)
	}
	if len(r.Groups) > 0 {
		b = mp.AppendStr(b, "groups")
		b = mp.AppendStrs(b, r.Groups)
	}
	b = mp.AppendStr(b, "estimate")
	b = r.Estimate.AppendMsgpack(b, mp.AppendInt64)
	if len(r.Holds) > 0 {
		b = mp.AppendStr(b, "holds")
		b = mp.AppendArrayLen(b, len(r.Holds))
		for i := range r.Holds {
			h := &r.Holds[i]
			b = mp.AppendMapLen(b, 2)
			b = mp.AppendStr(b, "key")
			b = appendCounterKey(b, &h.Key)
			b = mp.AppendStr(b, "amount")
			b = mp.AppendInt64(b, h.Amount)
		}
	}
	return b
}

func appendCounterKey(b []byte, k *CounterKey) []byte {
	n := 4
	for _, set := range []bool{k.Epoch != 0, k.Split != "", k.Reserved} {
		if set {
			n++
		}
	}
	b = mp.AppendMapLen(b, n)
	b = mp.AppendStr(b, "t")
	b = mp.AppendStr(b, k.Tenant)
	b = mp.AppendStr(b, "q")
	b = mp.AppendStr(b, k.Quota)
	if k.Epoch != 0 {
		b = mp.AppendStr(b, "e")
		b = mp.AppendUint32(b, k.Epoch)
	}
	if k.Split != "" {
		b = mp.AppendStr(b, "s")
		b = mp.AppendStr(b, k.Split)
	}
	b = mp.AppendStr(b, "l")
	b = mp.AppendStr(b, k.Limit)
	b = mp.AppendStr(b, "b")
	b = mp.AppendInt64(b, k.Bucket)
	if k.Reserved {
		b = mp.AppendStr(b, "r")
		b = append(b, mp.True)
	}
	return b
}

func appendClosed(b []byte, c *ClosedReservation) []byte {
	n := 4
	for _, set := range []bool{len(c.Dims) > 0, len(c.Groups) > 0} {
		if set {
			n++
		}
	}
	b = mp.AppendMapLen(b, n)
	b = mp.AppendStr(b, "outcome")
	b = mp.AppendStr(b, c.Outcome)
	b = mp.AppendStr(b, "at")
	b = mp.AppendTime(b, c.At)
	b = mp.AppendStr(b, "time")
	b = mp.AppendTime(b, c.Time)
	if len(c.Dims) > 0 {
		b = mp.AppendStr(b, "dims")
		b = mp.AppendStrMap(b, c.Dims)
	}
	if len(c.Groups) > 0 {
		b = mp.AppendStr(b, "groups")
		b = mp.AppendStrs(b, c.Groups)
	}
	b = mp.AppendStr(b, "estimate")
	return c.Estimate.AppendMsgpack(b, mp.AppendInt64)
}

var tenantShapeOK = tenantShape() == tenantShapeWant

// tenantShapeWant is tenantShape() of the types encodeTenant was written for.
const tenantShapeWant = "projections.Tenant{Name string msgpack:\"name\";Quotas map[string]*projections.QuotaState msgpack:\"quotas,omitempty\";Epochs map[string]uint32 msgpack:\"epochs,omitempty\";Rolling map[string]projections.RollingWindow msgpack:\"rolling,omitempty\";Reservations map[string]*projections.Reservation msgpack:\"reservations,omitempty\";Retries map[string]projections.Retry msgpack:\"retries,omitempty\";Workflows map[string]*projections.Workflow msgpack:\"workflows,omitempty\";Plans map[string]events.PlanSet msgpack:\"plans,omitempty\";LastDecision uint64 msgpack:\"last_decision,omitempty\";LastSettled int64 msgpack:\"last_settled,omitempty\";order []string }projections.Reservation{ID string msgpack:\"id\";Time time.Time msgpack:\"time\";ExpiresAt time.Time msgpack:\"expires_at\";Dims events.Dimensions msgpack:\"dims,omitempty\";Groups []string msgpack:\"groups,omitempty\";Estimate events.Amounts msgpack:\"estimate\";Holds []projections.Hold msgpack:\"holds,omitempty\"}projections.ClosedReservation{Outcome string msgpack:\"outcome\";At time.Time msgpack:\"at\";Time time.Time msgpack:\"time\";Dims events.Dimensions msgpack:\"dims,omitempty\";Groups []string msgpack:\"groups,omitempty\";Estimate events.Amounts msgpack:\"estimate\"}projections.Hold{Key projections.CounterKey msgpack:\"key\";Amount int64 msgpack:\"amount\"}projections.CounterKey{Tenant string msgpack:\"t\";Quota string msgpack:\"q\";Epoch uint32 msgpack:\"e,omitempty\";Split string msgpack:\"s,omitempty\";Limit string msgpack:\"l\";Bucket int64 msgpack:\"b\";Reserved bool msgpack:\"r,omitempty\"}events.Amounts{Tokens int64 json:\"tokens,omitempty\" msgpack:\"tokens,omitempty\";InputTokens int64 json:\"input_tokens,omitempty\" msgpack:\"input_tokens,omitempty\";OutputTokens int64 json:\"output_tokens,omitempty\" msgpack:\"output_tokens,omitempty\";Requests int64 json:\"requests,omitempty\" msgpack:\"requests,omitempty\";Cost int64 json:\"cost,omitempty\" msgpack:\"cost,omitempty\";Actions events.Counts json:\"actions,omitempty\" msgpack:\"actions,omitempty\"}"

// tenantShape describes the fields of the types encodeTenant writes by hand.
func tenantShape() string {
	return mp.Shape(Tenant{}, Reservation{}, ClosedReservation{}, Hold{}, CounterKey{}, events.Amounts{})
}
