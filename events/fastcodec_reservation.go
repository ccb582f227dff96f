package events

import "github.com/ledgerworks/ledger/internal/mp"

// The reservation events' payloads, by hand: see fastcodec.go. Each is a map
// of its fields in declaration order, omitempty ones left out when empty.

func appendReservationCreated(b []byte, p *ReservationCreated) []byte {
	b = mp.AppendMapLen(b, 3)
	b = mp.AppendStr(b, "reservation")
	b = mp.AppendStr(b, p.Reservation)
	b = mp.AppendStr(b, "estimate")
	b = p.Estimate.AppendMsgpack(b, mp.AppendInt)
	b = mp.AppendStr(b, "expires_at")
	return mp.AppendTime(b, p.ExpiresAt)
}

func appendReservationReconciled(b []byte, p *ReservationReconciled) []byte {
	b = mp.AppendMapLen(b, 2)
	b = mp.AppendStr(b, "reservation")
	b = mp.AppendStr(b, p.Reservation)
	b = mp.AppendStr(b, "actual")
	return p.Actual.AppendMsgpack(b, mp.AppendInt)
}

func appendReservationReleased(b []byte, p *ReservationReleased) []byte {
	n := 1
	if p.Reason != "" {
		n++
	}
	b = mp.AppendMapLen(b, n)
	b = mp.AppendStr(b, "reservation")
	b = mp.AppendStr(b, p.Reservation)
	if p.Reason != "" {
		b = mp.AppendStr(b, "reason")
		b = mp.AppendStr(b, p.Reason)
	}
	return b
}

func appendReservationExpired(b []byte, p *ReservationExpired) []byte {
	b = mp.AppendMapLen(b, 1)
	b = mp.AppendStr(b, "reservation")
	return mp.AppendStr(b, p.Reservation)
}

var amountKeys = mp.KeysOf(AmountFieldNames[:]...)

// ReadAmounts reads Amounts written as a map of its own, in the canonical
// form (the hand-written decoders of events and api share it).
func ReadAmounts(r *mp.Reader, a *Amounts) bool {
	return r.Fields(amountKeys, func(i int) bool { return readAmountField(r, a, i) })
}

// readAmountField reads the value of field i of Amounts (AmountFieldNames).
func readAmountField(r *mp.Reader, a *Amounts, i int) bool {
	if i == 5 {
		var ok bool
		a.Actions, ok = ReadCounts(r)
		return ok
	}
	v, ok := r.Int()
	switch i {
	case 0:
		a.Tokens = v
	case 1:
		a.InputTokens = v
	case 2:
		a.OutputTokens = v
	case 3:
		a.Requests = v
	case 4:
		a.Cost = v
	}
	return ok
}

// ReadCounts reads Counts in the canonical form its encoder writes: a
// non-empty map with strictly sorted keys (what the hand-written decoders of
// events and api accept; anything else goes to reflection).
func ReadCounts(r *mp.Reader) (Counts, bool) {
	m, ok := r.MapLen() // at most the bytes left
	if !ok || m == 0 {
		return nil, false
	}
	c := make(Counts, m)
	prev := ""
	for j := range m {
		k, ok := r.StrBytes()
		if !ok || (j > 0 && string(k) <= prev) {
			return nil, false
		}
		v, ok := r.Int()
		if !ok {
			return nil, false
		}
		prev = string(k)
		c[prev] = v
	}
	return c, true
}

var (
	reservationCreatedFields    = mp.KeysOf("reservation", "estimate", "expires_at")
	reservationReconciledFields = mp.KeysOf("reservation", "actual")
	reservationReleasedFields   = mp.KeysOf("reservation", "reason")
	reservationExpiredFields    = mp.KeysOf("reservation")
)

func readReservationCreated(r *mp.Reader, p *ReservationCreated) bool {
	return r.Fields(reservationCreatedFields, func(i int) bool {
		var ok bool
		switch i {
		case 0:
			p.Reservation, ok = r.Str()
		case 1:
			ok = ReadAmounts(r, &p.Estimate)
		case 2:
			p.ExpiresAt, ok = r.Time()
			p.ExpiresAt = p.ExpiresAt.UTC() // as normalizeTimes does
		}
		return ok
	})
}

func readReservationReconciled(r *mp.Reader, p *ReservationReconciled) bool {
	return r.Fields(reservationReconciledFields, func(i int) bool {
		if i == 0 {
			var ok bool
			p.Reservation, ok = r.Str()
			return ok
		}
		return ReadAmounts(r, &p.Actual)
	})
}

func readReservationReleased(r *mp.Reader, p *ReservationReleased) bool {
	return r.Fields(reservationReleasedFields, func(i int) bool {
		var ok bool
		if i == 0 {
			p.Reservation, ok = r.Str()
		} else {
			p.Reason, ok = r.Str()
		}
		return ok
	})
}

func readReservationExpired(r *mp.Reader, p *ReservationExpired) bool {
	return r.Fields(reservationExpiredFields, func(int) bool {
		var ok bool
		p.Reservation, ok = r.Str()
		return ok
	})
}
