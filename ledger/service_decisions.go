package ledger

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/ledgerworks/ledger/api"
	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/projections"
)

// Handlers of the decision endpoints: each decodes its request, builds a
// Command, has the decider decide and append it, and replies.

func (s *Service) limitsOf(sts []projections.LimitStatus, now time.Time) ([]api.LimitStatus, bool) {
	if len(sts) == 0 {
		return nil, false
	}
	out := make([]api.LimitStatus, len(sts))
	// Window starts in one allocation, as in CheckReplyOf: a reserve's
	// reply is built for every call that holds budget.
	starts := make([]time.Time, len(sts))
	warn := false
	for i := range sts {
		limitStatusOf(&out[i], &sts[i], now, &starts[i])
		warn = warn || sts[i].Warning
	}
	return out, warn
}

// decodeTenant decodes a request and binds its tenant to the subject's.
func decodeTenant[T any](in request, tenant func(*T) *string) (*T, error) {
	req := new(T)
	if err := api.Decode(in.data, req); err != nil {
		return nil, err
	}
	if err := bindTenant(tenant(req), in.tenant); err != nil {
		return nil, err
	}
	return req, nil
}

func (s *Service) consume(ctx context.Context, in request) (any, error) {
	req, err := decodeTenant(in, func(r *api.ConsumeRequest) *string { return &r.Tenant })
	if err != nil {
		return nil, err
	}
	dec, seq, err := s.dec.Submit(ctx, req.Tenant, Consume{ID: req.ID, Dims: req.Dims, Groups: req.Groups, Amounts: req.Amounts})
	if err != nil {
		return nil, err
	}
	limits, warn := s.limitsOf(dec.Statuses, s.opts.Now())
	return api.DecisionReply{Outcome: dec.Outcome, Seq: seq, Limits: limits, Warning: warn}, nil
}

func reserveCommand(req *api.ReserveRequest) Command {
	return Reserve{Reservation: req.Reservation, Dims: req.Dims, Groups: req.Groups, Estimate: req.Estimate, TTL: time.Duration(req.TTLMs) * time.Millisecond}
}

func (s *Service) reserveReply(req *api.ReserveRequest, dec Decision, seq uint64) api.ReserveReply {
	limits, warn := s.limitsOf(dec.Statuses, s.opts.Now())
	return api.ReserveReply{Reservation: req.Reservation, Outcome: dec.Outcome, ExpiresAt: dec.ExpiresAt.UTC(), Seq: seq, Limits: limits, Warning: warn}
}

func (s *Service) reserve(ctx context.Context, in request) (any, error) {
	req, err := decodeTenant(in, func(r *api.ReserveRequest) *string { return &r.Tenant })
	if err != nil {
		return nil, err
	}
	dec, seq, err := s.dec.Submit(ctx, req.Tenant, reserveCommand(req))
	if err != nil {
		return nil, err
	}
	return s.reserveReply(req, dec, seq), nil
}

func (s *Service) reconcile(ctx context.Context, in request) (any, error) {
	req, err := decodeTenant(in, func(r *api.ReconcileRequest) *string { return &r.Tenant })
	if err != nil {
		return nil, err
	}
	dec, seq, err := s.dec.Submit(ctx, req.Tenant, Reconcile{Reservation: req.Reservation, Actual: req.Actual})
	if err != nil {
		return nil, err
	}
	return api.DecisionReply{Outcome: dec.Outcome, Seq: seq}, nil
}

func (s *Service) release(ctx context.Context, in request) (any, error) {
	req, err := decodeTenant(in, func(r *api.ReleaseRequest) *string { return &r.Tenant })
	if err != nil {
		return nil, err
	}
	dec, seq, err := s.dec.Submit(ctx, req.Tenant, Release{Reservation: req.Reservation, Reason: req.Reason})
	if err != nil {
		return nil, err
	}
	return api.DecisionReply{Outcome: dec.Outcome, Seq: seq}, nil
}

// batch decides a batch's operations as their own requests would be: all
// are queued first, so that the operations on one tenant join one group of
// decisions and one fenced append, then each is answered in order.
func (s *Service) batch(ctx context.Context, in request) (any, error) {
	req := new(api.BatchRequest)
	if err := api.Decode(in.data, req); err != nil {
		return nil, err
	}
	if n := len(req.Ops); n == 0 || n > api.MaxBatchOps {
		return nil, &events.Error{Code: events.CodeInvalidArgument, Message: fmt.Sprintf("a batch carries 1 to %d operations, got %d", api.MaxBatchOps, n), Details: map[string]any{"field": "ops"}}
	}
	start := time.Now() // each operation is counted from here to its answer
	results := make([]api.BatchResult, len(req.Ops))
	pending := make([]*pendingCommand, len(req.Ops))
	var (
		cmds []Command
		at   []int // the operation of each command
	)
	for i, op := range req.Ops {
		cmd, err := batchCommand(op, in.tenant)
		if err != nil {
			results[i].Error = events.AsError(err)
			s.opts.Metrics.Decision(batchOp(op), decisionResult("", err), time.Since(start))
			continue
		}
		cmds, at = append(cmds, cmd), append(at, i)
	}
	// All at once, so the worker decides them as one group.
	for k, p := range s.dec.enqueueAll(in.tenant, cmds) {
		pending[at[k]] = p
	}
	for i, p := range pending {
		if p == nil {
			continue
		}
		dec, seq, err := s.dec.await(ctx, p)
		s.opts.Metrics.Decision(batchOp(req.Ops[i]), decisionResult(dec.Outcome, err), time.Since(start))
		switch op := req.Ops[i]; {
		case err != nil:
			results[i].Error = events.AsError(err)
		case op.Reserve != nil:
			r := s.reserveReply(op.Reserve, dec, seq)
			results[i].Reserve = &r
		default:
			results[i].Decision = &api.DecisionReply{Outcome: dec.Outcome, Seq: seq}
		}
	}
	return api.BatchReply{Results: results}, nil
}

// batchCommand is the command of one batch operation on tenant, the
// batch's.
func batchCommand(op api.BatchOp, tenant string) (Command, error) {
	set := 0
	var (
		field *string
		cmd   Command
	)
	if r := op.Reserve; r != nil {
		set++
		field, cmd = &r.Tenant, reserveCommand(r)
	}
	if r := op.Reconcile; r != nil {
		set++
		field, cmd = &r.Tenant, Reconcile{Reservation: r.Reservation, Actual: r.Actual}
	}
	if r := op.Release; r != nil {
		set++
		field, cmd = &r.Tenant, Release{Reservation: r.Reservation, Reason: r.Reason}
	}
	if set != 1 {
		return nil, &events.Error{Code: events.CodeInvalidArgument, Message: fmt.Sprintf("a batch operation sets exactly one of reserve, reconcile and release, this one sets %d", set)}
	}
	return cmd, bindTenant(field, tenant)
}

func (s *Service) retrySignal(ctx context.Context, in request) (any, error) {
	req, err := decodeTenant(in, func(r *api.RetrySignalRequest) *string { return &r.Tenant })
	if err != nil {
		return nil, err
	}
	dec, seq, err := s.dec.Submit(ctx, req.Tenant, SignalRetry{Key: req.Key, RetryDelay: req.RetryDelay, QuotaMetric: req.QuotaMetric, QuotaID: req.QuotaID, QuotaDimensions: req.QuotaDimensions})
	if err != nil {
		return nil, err
	}
	until := dec.ExpiresAt.UTC()
	return api.RetryReply{RetryUntil: &until, RetryDelay: req.RetryDelay, QuotaMetric: req.QuotaMetric, QuotaID: req.QuotaID, QuotaDimensions: req.QuotaDimensions, Seq: seq}, nil
}

func (s *Service) retryClear(ctx context.Context, in request) (any, error) {
	req, err := decodeTenant(in, func(r *api.RetryRequest) *string { return &r.Tenant })
	if err != nil {
		return nil, err
	}
	_, seq, err := s.dec.Submit(ctx, req.Tenant, ClearRetry{Key: req.Key})
	if err != nil {
		return nil, err
	}
	return api.RetryReply{Seq: seq}, nil
}

func (s *Service) retryGet(ctx context.Context, in request) (any, error) {
	req, err := decodeTenant(in, func(r *api.RetryRequest) *string { return &r.Tenant })
	if err != nil {
		return nil, err
	}
	now := s.opts.Now()
	var reply api.RetryReply
	err = s.proj.View(req.Tenant, func(t *projections.Tenant, _ projections.Counters, _ uint64) error {
		r, ok := t.Retries[projections.RetryKey(req.Key)]
		if !ok || !r.Signal.RetryUntil.After(now) {
			return nil
		}
		until := r.Signal.RetryUntil.UTC()
		reply = api.RetryReply{RetryUntil: &until, RetryDelay: r.Signal.RetryDelay, QuotaMetric: r.Signal.QuotaMetric, QuotaID: r.Signal.QuotaID, QuotaDimensions: r.Signal.QuotaDimensions}
		return nil
	})
	return reply, err
}

func workflowReply(id string, dec Decision, seq uint64) api.WorkflowReply {
	r := api.WorkflowReply{Workflow: id, Outcome: dec.Outcome, Steps: dec.Steps, MaxSteps: dec.MaxSteps, Seq: seq}
	if dec.MaxSteps > 0 {
		r.Remaining = max(dec.MaxSteps-dec.Steps, 0)
	}
	return r
}

func (s *Service) workflowBegin(ctx context.Context, in request) (any, error) {
	req, err := decodeTenant(in, func(r *api.WorkflowRequest) *string { return &r.Tenant })
	if err != nil {
		return nil, err
	}
	dec, seq, err := s.dec.Submit(ctx, req.Tenant, BeginWorkflow{Workflow: req.Workflow, Dims: req.Dims, Groups: req.Groups})
	if err != nil {
		return nil, err
	}
	return workflowReply(req.Workflow, dec, seq), nil
}

func (s *Service) workflowStep(ctx context.Context, in request) (any, error) {
	req, err := decodeTenant(in, func(r *api.WorkflowRequest) *string { return &r.Tenant })
	if err != nil {
		return nil, err
	}
	dec, seq, err := s.dec.Submit(ctx, req.Tenant, StepWorkflow{Workflow: req.Workflow})
	if err != nil {
		return nil, err
	}
	dec.Outcome = "stepped"
	return workflowReply(req.Workflow, dec, seq), nil
}

func (s *Service) workflowEnd(ctx context.Context, in request) (any, error) {
	req, err := decodeTenant(in, func(r *api.WorkflowRequest) *string { return &r.Tenant })
	if err != nil {
		return nil, err
	}
	dec, seq, err := s.dec.Submit(ctx, req.Tenant, EndWorkflow{Workflow: req.Workflow, Outcome: req.Outcome})
	if err != nil {
		return nil, err
	}
	return workflowReply(req.Workflow, dec, seq), nil
}

func (s *Service) workflowList(ctx context.Context, in request) (any, error) {
	req, err := decodeTenant(in, func(r *api.TenantRequest) *string { return &r.Tenant })
	if err != nil {
		return nil, err
	}
	if err := s.waitApplied(ctx, req.Tenant, req.AfterSeq); err != nil {
		return nil, err
	}
	reply := api.WorkflowListReply{Workflows: []api.ActiveWorkflow{}}
	err = s.proj.View(req.Tenant, func(t *projections.Tenant, _ projections.Counters, _ uint64) error {
		for _, w := range t.Workflows {
			reply.Workflows = append(reply.Workflows, api.ActiveWorkflow{Workflow: w.ID, Begun: w.Begun.UTC(), Steps: w.Steps, Dims: w.Dims})
		}
		return nil
	})
	sort.Slice(reply.Workflows, func(i, j int) bool { return reply.Workflows[i].Workflow < reply.Workflows[j].Workflow })
	return reply, err
}

// knownProject refuses a call naming a project the tenant has no plan for,
// once the tenant uses plans at all (seed 000's unknown_project).
func (s *Service) knownProject(tenant string, dims events.Dimensions) error {
	project := dims[events.DimProject]
	if project == "" {
		return nil
	}
	return s.proj.View(tenant, func(t *projections.Tenant, _ projections.Counters, _ uint64) error {
		if len(t.Plans) == 0 {
			return nil
		}
		if _, ok := t.Plans[project]; ok {
			return nil
		}
		if _, ok := t.Plans[""]; ok {
			return nil
		}
		return unknownProject(tenant, project)
	})
}

func unknownProject(tenant, project string) error {
	return &events.Error{Code: events.CodeNotFound, Message: fmt.Sprintf("tenant %s has no project %q", tenant, project), Details: map[string]any{"project": project, "reason": "unknown_project"}, Suggestion: "set a plan for the project (plan.set) first"}
}

func (s *Service) limitAction(ctx context.Context, in request) (any, error) {
	req, err := decodeTenant(in, func(r *api.LimitActionRequest) *string { return &r.Tenant })
	if err != nil {
		return nil, err
	}
	if req.Count == 0 {
		req.Count = 1
	}
	if err := s.knownProject(req.Tenant, req.Dims); err != nil {
		return nil, err
	}
	dec, seq, err := s.dec.Submit(ctx, req.Tenant, Consume{ID: req.ID, Dims: req.Dims, Groups: req.Groups, Amounts: events.Amounts{Actions: events.Counts{req.Action: req.Count}}})
	if err != nil {
		return nil, err
	}
	limits, warn := s.limitsOf(dec.Statuses, s.opts.Now())
	return api.DecisionReply{Outcome: dec.Outcome, Seq: seq, Limits: limits, Warning: warn}, nil
}

func (s *Service) planSet(ctx context.Context, in request) (any, error) {
	req, err := decodeTenant(in, func(r *api.PlanSetRequest) *string { return &r.Tenant })
	if err != nil {
		return nil, err
	}
	ev := s.adminEvent(req.Tenant, &req.Plan)
	if err := ev.Validate(); err != nil {
		return nil, err
	}
	seq, err := s.appendAndApply(ctx, req.Tenant, ev)
	if err != nil {
		return nil, err
	}
	return api.PlanReply{Plan: req.Plan, Seq: seq}, nil
}

func (s *Service) planGet(ctx context.Context, in request) (any, error) {
	req, err := decodeTenant(in, func(r *api.PlanRequest) *string { return &r.Tenant })
	if err != nil {
		return nil, err
	}
	var reply api.PlanReply
	err = s.proj.View(req.Tenant, func(t *projections.Tenant, _ projections.Counters, _ uint64) error {
		if p, ok := t.Plans[req.Project]; ok {
			reply.Plan = p
			return nil
		}
		if p, ok := t.Plans[""]; ok { // the tenant-wide plan
			p.Project = req.Project
			reply.Plan = p
			return nil
		}
		return unknownProject(req.Tenant, req.Project)
	})
	return reply, err
}

func (s *Service) counterReset(ctx context.Context, in request) (any, error) {
	req, err := decodeTenant(in, func(r *api.CounterResetRequest) *string { return &r.Tenant })
	if err != nil {
		return nil, err
	}
	if _, err := s.readQuota(req.Tenant, req.Quota); err != nil {
		return nil, err
	}
	ev := s.adminEvent(req.Tenant, &events.CounterReset{Quota: req.Quota, Split: req.Split, Reason: req.Reason})
	if err := ev.Validate(); err != nil {
		return nil, err
	}
	seq, err := s.appendAndApply(ctx, req.Tenant, ev)
	if err != nil {
		return nil, err
	}
	return api.WriteReply{Seq: seq}, nil
}
