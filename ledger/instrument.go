package ledger

import (
	"context"
	"errors"
	"time"

	"github.com/ledgerworks/ledger/api"
	"github.com/ledgerworks/ledger/events"
)

// decisionOps are the endpoints counted as decisions (ledger_decisions_total,
// under their endpoint's name); the batch endpoint counts each of its
// operations under its own (reserve, reconcile, release), and the expiry
// sweep its expirations as expire.
var decisionOps = map[string]bool{
	"consume": true, "reserve": true, "reconcile": true, "release": true, "limit_action": true,
	"workflow_begin": true, "workflow_step": true, "workflow_end": true,
	"retry_signal": true, "retry_clear": true,
}

// instrument counts the requests of endpoint op in the service's metrics:
// checks and decisions, with their result and how long the handler took.
func (s *Service) instrument(op string, h func(context.Context, request) (any, error)) func(context.Context, request) (any, error) {
	m := s.opts.Metrics
	switch {
	case m == nil:
		return h
	case op == "check":
		return func(ctx context.Context, in request) (any, error) {
			start := time.Now()
			reply, err := h(ctx, in)
			if !errors.Is(err, errWouldWait) { // run again, and counted, off the endpoint's goroutine
				m.Check(checkResult(reply, err), time.Since(start))
			}
			return reply, err
		}
	case decisionOps[op]:
		return func(ctx context.Context, in request) (any, error) {
			start := time.Now()
			reply, err := h(ctx, in)
			m.Decision(op, decisionResult(outcomeOf(reply), err), time.Since(start))
			return reply, err
		}
	}
	return h
}

// checkResult is a check's result label: allowed, or the code that denied
// it or failed it.
func checkResult(reply any, err error) string {
	if err != nil {
		return string(events.AsError(err).Code)
	}
	if r, ok := checkReplyIn(reply); ok && !r.Allowed {
		return string(r.Code)
	}
	return "allowed"
}

// decisionResult is a decision's result label: the outcome the decision
// answered with (created, exists, consumed, reconciled, charged, released,
// expired, begun, stepped, ended; ok for those without one), or the code of
// the error that refused it (quota_exceeded, retry_later, not_found, ...).
// Both are fixed sets: nothing a caller chooses.
func decisionResult(outcome string, err error) string {
	switch {
	case err != nil:
		return string(events.AsError(err).Code)
	case outcome == "":
		return "ok"
	}
	return outcome
}

// outcomeOf is the outcome a decision's reply carries.
func outcomeOf(reply any) string {
	switch r := reply.(type) {
	case api.DecisionReply:
		return r.Outcome
	case api.ReserveReply:
		return r.Outcome
	case api.WorkflowReply:
		return r.Outcome
	}
	return ""
}

// batchOp names a batch operation as its own endpoint is named.
func batchOp(op api.BatchOp) string {
	switch {
	case op.Reserve != nil && op.Reconcile == nil && op.Release == nil:
		return "reserve"
	case op.Reconcile != nil && op.Reserve == nil && op.Release == nil:
		return "reconcile"
	case op.Release != nil && op.Reserve == nil && op.Reconcile == nil:
		return "release"
	}
	return "batch" // sets none or several: refused
}
