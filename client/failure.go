package client

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ledgerworks/ledger/api"
	"github.com/ledgerworks/ledger/events"
)

// ErrUnavailable matches, with errors.Is, every error that means the ledger
// did not answer: nobody serves the subject (no responders), no reply
// within the client's timeout or the context's deadline, a connection that
// is closed, draining or reconnecting with a full buffer, or the ledger's
// own unavailable code. It is events.ErrUnavailable, so either sentinel
// matches, and errors.As still gives the *events.Error (and, for a
// connection error, errors.Is the nats.go one).
var ErrUnavailable = events.ErrUnavailable

// FailurePolicy is what a decision call returns when the ledger does not
// answer (an error matching ErrUnavailable).
type FailurePolicy int

const (
	// FailClosed, the default, returns the ErrUnavailable error: nothing
	// runs that the ledger has not allowed. It protects the limits.
	FailClosed FailurePolicy = iota
	// FailOpen answers the decision calls (Check, Consume, LimitAction,
	// Reserve) as allowed, marked Degraded, with a nil error, and counts
	// them in Client.Degraded. It protects availability: calls go on while
	// the ledger is away, unmetered.
	FailOpen
)

func (p FailurePolicy) String() string {
	switch p {
	case FailClosed:
		return "fail_closed"
	case FailOpen:
		return "fail_open"
	}
	return fmt.Sprintf("FailurePolicy(%d)", int(p))
}

// OutcomeDegraded is the Outcome of a reply the client made up under
// FailOpen (the ledger's are created, consumed, reconciled...).
const OutcomeDegraded = "degraded"

// WithFailurePolicy sets what the decision calls do when the ledger does
// not answer in time (default FailClosed). Under FailOpen, Check answers
// Allowed, Consume and LimitAction a DecisionReply, and Reserve a
// Reservation, each with Degraded set, nothing checked and nothing
// recorded; Reconcile and Release of a degraded reservation then answer
// Degraded without asking the ledger. Every other error (a denial, a bad
// request, a conflict, not_found, a cancelled context) is returned as
// under FailClosed, and every other call (quotas, usage, retry signals,
// workflows, settling a reservation the ledger did hold) fails closed.
func WithFailurePolicy(p FailurePolicy) Option {
	return func(c *Client) error {
		if p != FailClosed && p != FailOpen {
			return fmt.Errorf("client: unknown failure policy %d", int(p))
		}
		c.policy = p
		return nil
	}
}

// Degraded is how many decision calls this client has answered as allowed
// under FailOpen because the ledger did not answer: export it as a counter
// (it only grows). The settling of a degraded reservation is not counted.
func (c *Client) Degraded() uint64 { return c.degraded.Load() }

// failOpen reports whether the decision call that failed with err is to be
// answered as allowed, and counts it if so.
func (c *Client) failOpen(err error) bool {
	if c.policy != FailOpen || !errors.Is(err, ErrUnavailable) {
		return false
	}
	c.degraded.Add(1)
	return true
}

// degradedReservation is the reservation Reserve returns under FailOpen
// when the ledger did not answer: nothing is held, and settling it is a
// no-op (Reservation.Reconcile).
func (c *Client) degradedReservation(tenant, id string, ttl time.Duration) *Reservation {
	if ttl <= 0 {
		ttl = 60 * time.Second // the ledger's default
	}
	exp := time.Now().Add(ttl).UTC()
	return &Reservation{c: c, Tenant: tenant, ID: id, ExpiresAt: exp, Degraded: true,
		Reply: api.ReserveReply{Reservation: id, Outcome: OutcomeDegraded, ExpiresAt: exp, Degraded: true}}
}

// connectionDown are the nats.go errors of a request that could not reach
// the ledger because of the client's own connection.
var connectionDown = []error{
	nats.ErrConnectionClosed,
	nats.ErrConnectionDraining,
	nats.ErrDrainTimeout,
	nats.ErrConnectionReconnecting,
	nats.ErrReconnectBufExceeded,
	nats.ErrNoServers,
	nats.ErrDisconnected,
	nats.ErrStaleConnection,
}

// unreachable returns err as an unavailable error that still wraps err
// when it is a connection error, or nil when it is not one.
func unreachable(subject string, err error) error {
	for _, down := range connectionDown {
		if errors.Is(err, down) {
			return fmt.Errorf("%w: %w", &events.Error{Code: events.CodeUnavailable, Message: "cannot reach the ledger on " + subject, Suggestion: "check the NATS connection; retry once it is back"}, err)
		}
	}
	return nil
}
