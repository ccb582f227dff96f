package projections

import (
	"bytes"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/vmihailenco/msgpack/v5"

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

// close remembers a settled reservation. Settled reservations are
// forgotten once the tenant settles another more than ClosedRetention later
// (event time, so replay forgets the same ones at the same sequence).
func (t *Tenant) close(r *Reservation, outcome string, at time.Time, d *Deltas) {
	t.LastSettled = max(t.LastSettled, at.UnixNano())
	horizon := t.forgetBefore()
	if d.Forget == nil {
		d.Forget = map[string]int64{}
	}
	d.Forget[t.Name] = horizon
	if d.Settled == nil {
		d.Settled = map[SettledKey]ClosedReservation{}
	}
	k := SettledKey{Tenant: t.Name, Reservation: r.ID}
	if at.UnixNano() < horizon {
		delete(d.Settled, k) // forgotten as soon as it is settled
		return
	}
	d.Settled[k] = ClosedReservation{Outcome: outcome, At: at, Time: r.Time, Dims: r.Dims, Groups: r.Groups, Estimate: r.Estimate}
}

func (t *Tenant) forgetBefore() int64 { return t.LastSettled - int64(ClosedRetention) }

// Remembers reports whether a settled reservation is still remembered by the
// tenant: a store may keep it a little longer than the fold promises.
func (t *Tenant) Remembers(c ClosedReservation) bool { return c.At.UnixNano() >= t.forgetBefore() }

// SettledKey names a settled reservation.
type SettledKey struct{ Tenant, Reservation string }

// settledKey: r <tenant> 0 <reservation>.
func settledKey(dst []byte, tenant, id string) []byte {
	dst = append(dst, prefixSettled)
	dst = append(dst, tenant...)
	dst = append(dst, 0)
	return append(dst, id...)
}

// settledAtKey: R <tenant> 0 <settled at:8> <reservation>.
func settledAtKey(dst []byte, tenant string, at int64, id string) []byte {
	dst = append(dst, prefixSettledAt)
	dst = append(dst, tenant...)
	dst = append(dst, 0)
	dst = appendBucket(dst, at)
	return append(dst, id...)
}

// writeSettled forgets what the commit's settlements put past retention,
// then writes the new settlements. After every commit the store holds
// exactly the settled reservations at or after each tenant's horizon, so a
// rebuilt store and a live one agree at the same sequence.
func (s *Store) writeSettled(b *pebble.Batch, d *Deltas) error {
	if len(d.Forget) > 0 {
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixSettledAt}, UpperBound: []byte{prefixSettledAt + 1}})
		if err != nil {
			return err
		}
		defer it.Close()
		tenants := slices.Sorted(maps.Keys(d.Forget))
		var key []byte
		for _, tenant := range tenants {
			lower := settledAtKey(nil, tenant, math.MinInt64, "")
			upper := settledAtKey(nil, tenant, d.Forget[tenant], "")
			for it.SeekGE(lower); it.Valid() && bytes.Compare(it.Key(), upper) < 0; it.Next() {
				id := string(it.Key()[len(upper):])
				if err := b.Delete(it.Key(), nil); err != nil {
					return err
				}
				// The id may have been reused and settled again since:
				// forget it only if this is the settlement that is past.
				c, ok, err := s.Settled(tenant, id)
				if err != nil {
					return err
				}
				if ok && c.At.UnixNano() < d.Forget[tenant] {
					if err := b.Delete(settledKey(key[:0], tenant, id), nil); err != nil {
						return err
					}
				}
			}
			if err := it.Error(); err != nil {
				return err
			}
		}
	}
	for k, c := range d.Settled {
		if c.At.UnixNano() < d.Forget[k.Tenant] {
			continue // a later settlement in the same commit put it past retention
		}
		if s.settled != nil {
			s.settled.add(k.Tenant, k.Reservation) // before the commit: never behind Pebble
		}
		v := appendClosed(nil, &c)
		if err := b.Set(settledKey(nil, k.Tenant, k.Reservation), v, nil); err != nil {
			return err
		}
		if err := b.Set(settledAtKey(nil, k.Tenant, c.At.UnixNano(), k.Reservation), nil, nil); err != nil {
			return err
		}
	}
	return nil
}

// Settled returns a settled reservation of a tenant, if the store still
// holds it.
func (s *Store) Settled(tenant, id string) (ClosedReservation, bool, error) {
	var c ClosedReservation
	if s.settled != nil && s.settled.ready.Load() && !s.settled.mayContain(tenant, id) {
		return c, false, nil
	}
	v, ok, err := s.get(settledKey(nil, tenant, id))
	if err != nil || !ok {
		return c, false, err
	}
	if err := msgpack.Unmarshal(v, &c); err != nil {
		return c, false, fmt.Errorf("decode settled reservation %s/%s: %w", tenant, id, err)
	}
	return c, true, nil
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
