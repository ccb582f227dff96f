package client

import (
	"context"
	"time"

	"github.com/ledgerworks/ledger/api"
	"github.com/ledgerworks/ledger/events"
)

// Consume checks and records usage in one atomic step. Give id (NewID) to
// make a retry safe: the same id is answered, not counted twice. A denial is
// an error: errors.Is(err, events.ErrQuotaExceeded). Under FailOpen, a
// ledger that does not answer gets a Degraded reply and a nil error, and
// the usage is not recorded.
func (c *Client) Consume(ctx context.Context, tenant, id string, dims events.Dimensions, amounts events.Amounts) (*api.DecisionReply, error) {
	var r api.DecisionReply
	return c.decided(&r, c.callFor(ctx, api.SubjectConsume, tenant, api.ConsumeRequest{Tenant: tenant, ID: id, Dims: dims, Amounts: amounts}, &r))
}

// decided returns a decision call's reply and error, or under FailOpen a
// degraded grant for an error that means the ledger did not answer.
func (c *Client) decided(r *api.DecisionReply, err error) (*api.DecisionReply, error) {
	if err != nil && c.failOpen(err) {
		return &api.DecisionReply{Outcome: OutcomeDegraded, Degraded: true}, nil
	}
	return r, err
}

// ReserveOptions are the optional parts of a reservation.
type ReserveOptions struct {
	// ID names the reservation (default NewID()). A retried Reserve with the
	// same ID returns the same reservation instead of holding twice.
	ID     string
	Groups []string
	TTL    time.Duration // default 60 s
}

// Reservation is budget held for one call until Reconcile or Release (or
// its expiry).
type Reservation struct {
	c         *Client
	Tenant    string
	ID        string
	ExpiresAt time.Time
	Reply     api.ReserveReply
	// Degraded is a reservation granted under FailOpen while the ledger did
	// not answer: nothing is held, and Reconcile and Release answer
	// Degraded without asking the ledger (nothing is charged).
	Degraded bool
}

// Reserve holds estimate against every limit matching dims, all or nothing.
// Reserve, Reconcile and Release calls made at the same time from several
// goroutines are sent together (see batcher); each gets its own answer.
// Under FailOpen, a ledger that does not answer gets a Degraded reservation
// and a nil error.
func (c *Client) Reserve(ctx context.Context, tenant string, dims events.Dimensions, estimate events.Amounts, o ReserveOptions) (*Reservation, error) {
	if o.ID == "" {
		o.ID = NewID()
	}
	req := api.ReserveRequest{Tenant: tenant, Reservation: o.ID, Dims: dims, Groups: o.Groups, Estimate: estimate, TTLMs: o.TTL.Milliseconds()}
	// Through the client's batches: concurrent calls share a request.
	res, err := c.batchOp(ctx, tenant, api.BatchOp{Reserve: &req})
	if err != nil {
		if c.failOpen(err) {
			return c.degradedReservation(tenant, o.ID, o.TTL), nil
		}
		return nil, err
	}
	if res.Reserve == nil {
		return nil, &events.Error{Code: events.CodeInternal, Message: "the batch result of a reserve has no reserve reply"}
	}
	return &Reservation{c: c, Tenant: tenant, ID: o.ID, ExpiresAt: res.Reserve.ExpiresAt, Reply: *res.Reserve}, nil
}

// Reconcile settles the reservation with what the call used: the surplus is
// returned, a shortfall charged. Calling it again is harmless. A Degraded
// reservation is not sent: the answer is Degraded, and actual is not
// recorded. Settling a reservation the ledger holds fails closed under
// either policy: retry it, or let it expire.
func (r *Reservation) Reconcile(ctx context.Context, actual events.Amounts) (*api.DecisionReply, error) {
	if r.Degraded {
		return &api.DecisionReply{Outcome: OutcomeDegraded, Degraded: true}, nil
	}
	return r.c.decision(ctx, r.Tenant, api.BatchOp{Reconcile: &api.ReconcileRequest{Tenant: r.Tenant, Reservation: r.ID, Actual: actual}})
}

// Release gives the reservation back: the call never ran. A Degraded
// reservation is not sent, as for Reconcile.
func (r *Reservation) Release(ctx context.Context, reason string) (*api.DecisionReply, error) {
	if r.Degraded {
		return &api.DecisionReply{Outcome: OutcomeDegraded, Degraded: true}, nil
	}
	return r.c.decision(ctx, r.Tenant, api.BatchOp{Release: &api.ReleaseRequest{Tenant: r.Tenant, Reservation: r.ID, Reason: reason}})
}

// decision sends op in a batch and returns its decision reply.
func (c *Client) decision(ctx context.Context, tenant string, op api.BatchOp) (*api.DecisionReply, error) {
	res, err := c.batchOp(ctx, tenant, op)
	if err != nil {
		return nil, err
	}
	if res.Decision == nil {
		return nil, &events.Error{Code: events.CodeInternal, Message: "the batch result has no decision reply"}
	}
	return res.Decision, nil
}

// SignalRetry records an upstream 429's RetryInfo for a key such as
// {model, location, metric}; checks and reserves on the key answer
// retry_later until it passes or ClearRetry.
func (c *Client) SignalRetry(ctx context.Context, req api.RetrySignalRequest) (*api.RetryReply, error) {
	var r api.RetryReply
	return &r, c.callFor(ctx, api.SubjectRetrySignal, req.Tenant, req, &r)
}

// ClearRetry clears a key's retry signal (after a successful call).
func (c *Client) ClearRetry(ctx context.Context, tenant string, key events.Dimensions) error {
	var r api.RetryReply
	return c.callFor(ctx, api.SubjectRetryClear, tenant, api.RetryRequest{Tenant: tenant, Key: key}, &r)
}

// Retry returns a key's standing retry signal (RetryUntil nil when none).
func (c *Client) Retry(ctx context.Context, tenant string, key events.Dimensions) (*api.RetryReply, error) {
	var r api.RetryReply
	return &r, c.callFor(ctx, api.SubjectRetryGet, tenant, api.RetryRequest{Tenant: tenant, Key: key}, &r)
}

// BeginWorkflow starts a workflow; errors.Is(err, events.ErrWorkflowLimit)
// when the period's workflows are used up. Workflows fail closed under
// either failure policy: a workflow is ledger state that its steps are
// counted against, and one begun without the ledger would be unknown to it
// (every later step or end not_found). A caller that would rather go on can
// test errors.Is(err, ErrUnavailable) itself.
func (c *Client) BeginWorkflow(ctx context.Context, tenant, workflow string, dims events.Dimensions) (*api.WorkflowReply, error) {
	var r api.WorkflowReply
	return &r, c.callFor(ctx, api.SubjectWorkflowBegin, tenant, api.WorkflowRequest{Tenant: tenant, Workflow: workflow, Dims: dims}, &r)
}

// StepWorkflow executes one step; errors.Is(err, events.ErrStepLimit) when
// the workflow has used all its steps.
func (c *Client) StepWorkflow(ctx context.Context, tenant, workflow string) (*api.WorkflowReply, error) {
	var r api.WorkflowReply
	return &r, c.callFor(ctx, api.SubjectWorkflowStep, tenant, api.WorkflowRequest{Tenant: tenant, Workflow: workflow}, &r)
}

// EndWorkflow finishes a workflow.
func (c *Client) EndWorkflow(ctx context.Context, tenant, workflow, outcome string) (*api.WorkflowReply, error) {
	var r api.WorkflowReply
	return &r, c.callFor(ctx, api.SubjectWorkflowEnd, tenant, api.WorkflowRequest{Tenant: tenant, Workflow: workflow, Outcome: outcome}, &r)
}

// ActiveWorkflows lists the workflows that have begun and not ended.
func (c *Client) ActiveWorkflows(ctx context.Context, tenant string) ([]api.ActiveWorkflow, error) {
	var r api.WorkflowListReply
	return r.Workflows, c.callFor(ctx, api.SubjectWorkflowList, tenant, api.TenantRequest{Tenant: tenant}, &r)
}

// LimitAction asks whether a named action may happen now and counts it if so
// (seed 000's limit_action). Under FailOpen, as Consume.
func (c *Client) LimitAction(ctx context.Context, req api.LimitActionRequest) (*api.DecisionReply, error) {
	var r api.DecisionReply
	return c.decided(&r, c.callFor(ctx, api.SubjectLimitAction, req.Tenant, req, &r))
}

// SetPlan sets a project's plan values (run timeout, dataclips, retention).
func (c *Client) SetPlan(ctx context.Context, tenant string, plan events.PlanSet) (*api.PlanReply, error) {
	var r api.PlanReply
	return &r, c.callFor(ctx, api.SubjectPlanSet, tenant, api.PlanSetRequest{Tenant: tenant, Plan: plan}, &r)
}

// Plan returns a project's plan (the tenant-wide one when the project has
// none); errors.Is(err, events.ErrNotFound) for an unknown project.
func (c *Client) Plan(ctx context.Context, tenant, project string) (*api.PlanReply, error) {
	var r api.PlanReply
	return &r, c.callFor(ctx, api.SubjectPlanGet, tenant, api.PlanRequest{Tenant: tenant, Project: project}, &r)
}

// ResetCounter forces a quota's counters (of one split, or all) to zero.
func (c *Client) ResetCounter(ctx context.Context, tenant, quota, split, reason string) (*api.WriteReply, error) {
	var r api.WriteReply
	return &r, c.callFor(ctx, api.SubjectCounterReset, tenant, api.CounterResetRequest{Tenant: tenant, Quota: quota, Split: split, Reason: reason}, &r)
}
