package projections

import (
	"bytes"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/ledgerworks/ledger/events"
)

// How a reservation ended.
const (
	OutcomeReconciled = "reconciled"
	OutcomeReleased   = "released"
	OutcomeExpired    = "expired"
)

// ClosedRetention is how long a settled reservation is remembered, so that a
// repeated reconcile or release gets the same answer and a reconcile that
// arrives after expiry can still charge the call in its own window.
const ClosedRetention = 24 * time.Hour

// ClosedReservation is a reservation that was settled.
type ClosedReservation struct {
	Outcome  string            `msgpack:"outcome"`
	At       time.Time         `msgpack:"at"`   // when it was settled
	Time     time.Time         `msgpack:"time"` // when it was created
	Dims     events.Dimensions `msgpack:"dims,omitempty"`
	Groups   []string          `msgpack:"groups,omitempty"`
	Estimate events.Amounts    `msgpack:"estimate"`
}

// close remembers a settled reservation and forgets those settled more than
// ClosedRetention before at (event time, so replay forgets the same ones).
func (t *Tenant) close(r *Reservation, outcome string, at time.Time) {
	if t.Closed == nil {
		t.Closed = map[string]ClosedReservation{}
	}
	for id, c := range t.Closed {
		if at.Sub(c.At) > ClosedRetention {
			delete(t.Closed, id)
		}
	}
	t.Closed[r.ID] = ClosedReservation{Outcome: outcome, At: at, Time: r.Time, Dims: r.Dims, Groups: r.Groups, Estimate: r.Estimate}
}

// ExpiryKey indexes an open reservation by when it expires, so the ledger
// finds the due ones with one bounded scan.
type ExpiryKey struct {
	At          int64 // Unix nanoseconds
	Tenant      string
	Reservation string
}

func (d *Deltas) expiry(k ExpiryKey, open bool) {
	if d.Expiries == nil {
		d.Expiries = map[ExpiryKey]bool{}
	}
	if !open && d.Expiries[k] {
		delete(d.Expiries, k) // opened and closed in the same batch
		return
	}
	d.Expiries[k] = open
}

// expiryKey: x <at:8> <tenant> 0 <reservation>.
func expiryKey(k ExpiryKey) []byte {
	b := make([]byte, 0, 10+len(k.Tenant)+len(k.Reservation))
	b = append(b, prefixExpiry)
	b = appendBucket(b, k.At)
	b = append(b, k.Tenant...)
	b = append(b, 0)
	return append(b, k.Reservation...)
}

func writeExpiries(b *pebble.Batch, ex map[ExpiryKey]bool) error {
	for k, open := range ex {
		var err error
		if open {
			err = b.Set(expiryKey(k), nil, nil)
		} else {
			err = b.Delete(expiryKey(k), nil)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// DueExpiries returns up to max open reservations whose expiry is at or
// before now, oldest first.
func (s *Store) DueExpiries(now time.Time, max int) ([]ExpiryKey, error) {
	lower := []byte{prefixExpiry}
	upper := appendBucket([]byte{prefixExpiry}, now.UnixNano()+1)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []ExpiryKey
	for it.First(); it.Valid() && len(out) < max; it.Next() {
		k := it.Key()
		if len(k) < 10 {
			continue
		}
		rest := k[9:]
		i := bytes.IndexByte(rest, 0)
		if i < 0 {
			continue
		}
		out = append(out, ExpiryKey{At: decodeBucket(k[1:9]), Tenant: string(rest[:i]), Reservation: string(rest[i+1:])})
	}
	return out, it.Error()
}

// DueExpiries returns open reservations due to expire at now.
func (p *Projector) DueExpiries(now time.Time, max int) ([]ExpiryKey, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.store.DueExpiries(now, max)
}

// Seen reports whether an event id of a tenant has been folded.
func (p *Projector) Seen(tenant, id string) (bool, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.store.Seen(tenant, id)
}
