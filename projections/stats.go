package projections

import (
	"bytes"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"

	"github.com/ledgerworks/ledger/events"
)

// Stats are what a projector has folded since it was made (counted as each
// commit lands), and the open reservations of its projection: those are
// counted from the store when the projector is made and kept up to date by
// every commit, so they are right after a restart too.
type Stats struct {
	// Messages are the stream messages folded, refused ones included.
	Messages uint64
	// Events are the events folded: valid, in their place, not seen before.
	Events uint64
	// Duplicates are events dropped because their id was folded already
	// (a producer's retry, or a redelivered batch).
	Duplicates uint64
	// Rejected are the events and messages refused (see Projector.Rejected).
	Rejected uint64
	// Created reservations, and settled ones by how they ended.
	Created, Reconciled, Released, Expired uint64
	// Open are the reservations open in the projection, and Reserved the
	// estimates they hold.
	Open     int64
	Reserved ReservedAmounts
}

// ReservedAmounts are the estimates open reservations hold, by metric:
// tokens (input and output together unless given as one), requests, cost.
type ReservedAmounts struct {
	Tokens, Requests, Cost int64
}

func (r *ReservedAmounts) add(a *events.Amounts, sign int64) {
	r.Tokens += sign * a.TotalTokens()
	r.Requests += sign * a.Requests
	r.Cost += sign * a.Cost
}

// Stats returns what the projector has folded; see Stats.
func (p *Projector) Stats() Stats {
	s := &p.stats
	return Stats{
		Messages: s.messages.Load(), Events: s.events.Load(), Duplicates: s.duplicates.Load(), Rejected: p.rejected.Load(),
		Created: s.created.Load(), Reconciled: s.reconciled.Load(), Released: s.released.Load(), Expired: s.expired.Load(),
		Open:     s.open.n.Load(),
		Reserved: ReservedAmounts{Tokens: s.open.tokens.Load(), Requests: s.open.requests.Load(), Cost: s.open.cost.Load()},
	}
}

// projectorStats are a projector's Stats, read while it folds.
type projectorStats struct {
	messages, events, duplicates           atomic.Uint64
	created, reconciled, released, expired atomic.Uint64
	open                                   openReservations
}

type openReservations struct {
	n, tokens, requests, cost atomic.Int64
}

func (o *openReservations) add(c openCount) {
	o.n.Add(c.n)
	o.tokens.Add(c.reserved.Tokens)
	o.requests.Add(c.reserved.Requests)
	o.cost.Add(c.reserved.Cost)
}

func (s *projectorStats) add(f *foldStats) {
	s.messages.Add(f.messages)
	s.events.Add(f.events)
	s.duplicates.Add(f.duplicates)
	s.created.Add(f.created)
	s.reconciled.Add(f.reconciled)
	s.released.Add(f.released)
	s.expired.Add(f.expired)
	s.open.add(f.open)
}

// openCount counts open reservations and what they hold.
type openCount struct {
	n        int64
	reserved ReservedAmounts
}

// foldStats are one Apply's counts, added to the projector's once its
// commit has landed.
type foldStats struct {
	messages, events, duplicates           uint64
	created, reconciled, released, expired uint64
	open                                   openCount
}

// observe counts an event about to be folded onto t. It opens and settles
// reservations exactly when Evolve does: a created reservation that is not
// open yet, a settlement of one that is open.
func (f *foldStats) observe(t *Tenant, ev *events.Event) {
	f.events++
	var id string
	var outcome *uint64
	switch p := ev.Payload.(type) {
	case *events.ReservationCreated:
		if _, open := t.Reservations[p.Reservation]; !open {
			f.created++
			f.open.n++
			f.open.reserved.add(&p.Estimate, 1)
		}
		return
	case *events.ReservationReconciled:
		id, outcome = p.Reservation, &f.reconciled
	case *events.ReservationReleased:
		id, outcome = p.Reservation, &f.released
	case *events.ReservationExpired:
		id, outcome = p.Reservation, &f.expired
	default:
		return
	}
	if r, open := t.Reservations[id]; open {
		*outcome++
		f.open.n--
		f.open.reserved.add(&r.Estimate, -1)
	}
}

// OpenReservations counts the reservations open in the store and the
// estimates they hold: the states of the tenants its expiry index names
// (every open reservation has one entry there, see Deltas.Expiries).
func (s *Store) OpenReservations() (n int64, reserved ReservedAmounts, err error) {
	c, err := s.openReservations()
	return c.n, c.reserved, err
}

func (s *Store) openReservations() (openCount, error) {
	var c openCount
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixExpiry}, UpperBound: []byte{prefixExpiry + 1}})
	if err != nil {
		return c, err
	}
	var tenants []string
	seen := map[string]bool{}
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) < 10 {
			continue
		}
		rest := k[9:]
		i := bytes.IndexByte(rest, 0)
		if i < 0 || seen[string(rest[:i])] {
			continue
		}
		seen[string(rest[:i])] = true
		tenants = append(tenants, string(rest[:i]))
	}
	if err := it.Error(); err != nil {
		it.Close()
		return c, err
	}
	if err := it.Close(); err != nil {
		return c, err
	}
	for _, name := range tenants {
		t, err := s.LoadTenant(name)
		if err != nil {
			return c, err
		}
		for _, r := range t.Reservations {
			c.n++
			c.reserved.add(&r.Estimate, 1)
		}
	}
	return c, nil
}
