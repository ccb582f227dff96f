package ledger

import (
	"fmt"
	"maps"
	"sort"
	"strings"
	"time"

	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/projections"
)

// Commands a decider decides. Each names the tenant it is about in the
// request; Decide gets that tenant's state.
type (
	// Consume checks and records usage in one step (seed 003's consume).
	Consume struct {
		ID      string // the usage event's id: a retry with the same id is answered, not counted again
		Dims    events.Dimensions
		Groups  []string
		Amounts events.Amounts
	}
	// Reserve holds an estimate against every matching limit (seed 002).
	Reserve struct {
		Reservation string
		Dims        events.Dimensions
		Groups      []string
		Estimate    events.Amounts
		TTL         time.Duration
	}
	// Reconcile settles a reservation with the actual usage.
	Reconcile struct {
		Reservation string
		Actual      events.Amounts
	}
	// Release gives a reservation back: the call never ran.
	Release struct {
		Reservation string
		Reason      string
	}
	// Expire gives back a reservation whose TTL has passed.
	Expire struct{ Reservation string }
	// SignalRetry records a 429's RetryInfo for a key.
	SignalRetry struct {
		Key             events.Dimensions
		RetryDelay      string
		QuotaMetric     string
		QuotaID         string
		QuotaDimensions map[string]string
	}
	// ClearRetry removes the retry signal of a key.
	ClearRetry struct{ Key events.Dimensions }
	// BeginWorkflow starts a workflow (counts against `workflows` limits).
	BeginWorkflow struct {
		Workflow string
		Dims     events.Dimensions
		Groups   []string
	}
	// StepWorkflow executes one step of a workflow (against max_steps).
	StepWorkflow struct{ Workflow string }
	// EndWorkflow finishes a workflow.
	EndWorkflow struct {
		Workflow string
		Outcome  string
	}
)

// Command is one of the commands above.
type Command interface{ command() }

func (Consume) command()       {}
func (Reserve) command()       {}
func (Reconcile) command()     {}
func (Release) command()       {}
func (Expire) command()        {}
func (SignalRetry) command()   {}
func (ClearRetry) command()    {}
func (BeginWorkflow) command() {}
func (StepWorkflow) command()  {}
func (EndWorkflow) command()   {}

// View is what deciding reads besides the tenant's state.
type View interface {
	projections.Counters
	// Seen reports whether an event id of the tenant is already in the stream.
	Seen(id string) bool
	// Settled returns a settled reservation of the tenant, if it is kept.
	Settled(id string) (projections.ClosedReservation, bool)
}

// settled returns a settled reservation the tenant still remembers.
func settled(t *projections.Tenant, v View, id string) (projections.ClosedReservation, bool) {
	c, ok := v.Settled(id)
	return c, ok && t.Remembers(c)
}

// Decision is what Decide concluded: the events to append (none when the
// command changes nothing) and what to tell the caller.
type Decision struct {
	Events   []events.Event
	Statuses []projections.LimitStatus
	// Outcome says how a reservation command ended: "created", "exists",
	// "reconciled", "released", "expired", "charged" (reconciled after the
	// reservation had expired or been released: the usage is charged).
	Outcome   string
	ExpiresAt time.Time
	Steps     int64 // a workflow's steps so far (after this one)
	MaxSteps  int64 // 0: unlimited
}

// Limits of commands.
const (
	DefaultTTL = time.Minute
	MaxTTL     = 24 * time.Hour
	maxRefLen  = 96 // reservation and workflow ids: they are embedded in event ids
)

// Decide turns a command into events against the tenant's state, or refuses
// it with a typed error. It is pure: the clock is now, ids come from newID,
// and it reads nothing but its arguments. Fold the returned events with
// projections.Evolve before deciding the next command on the same state.
func Decide(t *projections.Tenant, v View, cmd Command, now time.Time, newID func() string) (Decision, error) {
	now = now.UTC()
	mk := func(id string, dims events.Dimensions, groups []string, at time.Time, p events.Payload) events.Event {
		ev := events.New(id, t.Name, at, dims, p)
		ev.Groups = groups
		return ev
	}
	switch c := cmd.(type) {
	case Consume:
		if err := validCall(c.Dims, c.Groups, c.Amounts); err != nil {
			return Decision{}, err
		}
		id := c.ID
		if id == "" {
			id = newID()
		}
		if v.Seen(id) {
			return Decision{Outcome: "exists"}, nil
		}
		if err := retryBlock(t, c.Dims, now); err != nil {
			return Decision{}, err
		}
		sts := projections.Statuses(t, v, projections.Call{Dims: c.Dims, Groups: c.Groups, Request: c.Amounts}, now)
		if st := worstExceeded(sts); st != nil {
			return Decision{Statuses: sts}, ExceededError(st, now)
		}
		ev := mk(id, c.Dims, c.Groups, now, &events.UsageRecorded{Amounts: c.Amounts, Decided: true})
		return Decision{Events: []events.Event{ev}, Statuses: sts, Outcome: "consumed"}, validate(ev)

	case Reserve:
		if err := validRef("reservation", c.Reservation); err != nil {
			return Decision{}, err
		}
		if err := validCall(c.Dims, c.Groups, c.Estimate); err != nil {
			return Decision{}, err
		}
		if r, ok := t.Reservations[c.Reservation]; ok {
			if !maps.Equal(r.Dims, c.Dims) || !sameAmounts(r.Estimate, c.Estimate) {
				return Decision{}, &events.Error{Code: events.CodeConflict, Message: fmt.Sprintf("reservation %s is already open for another call", c.Reservation), Details: map[string]any{"reservation": c.Reservation}, Suggestion: "use a new reservation id for a new call"}
			}
			return Decision{Outcome: "exists", ExpiresAt: r.ExpiresAt}, nil // a retried reserve
		}
		if cl, ok := settled(t, v, c.Reservation); ok {
			return Decision{}, &events.Error{Code: events.CodeConflict, Message: fmt.Sprintf("reservation %s was already %s", c.Reservation, cl.Outcome), Details: map[string]any{"reservation": c.Reservation, "outcome": cl.Outcome}, Suggestion: "use a new reservation id for a new call"}
		}
		createdID := c.Reservation + ":created"
		if v.Seen(createdID) {
			// Settled and forgotten since, but its events' ids derive from
			// the reservation id and are deduplicated forever: a second
			// reservation under it would be dropped by every projection.
			return Decision{}, &events.Error{Code: events.CodeConflict, Message: fmt.Sprintf("reservation %s was used before", c.Reservation), Details: map[string]any{"reservation": c.Reservation}, Suggestion: "use a new reservation id for a new call"}
		}
		ttl := c.TTL
		if ttl == 0 {
			ttl = DefaultTTL
		}
		if ttl < 0 || ttl > MaxTTL {
			return Decision{}, &events.Error{Code: events.CodeInvalidArgument, Message: fmt.Sprintf("ttl must be between 1s and %s", MaxTTL), Details: map[string]any{"field": "ttl_ms"}}
		}
		if err := retryBlock(t, c.Dims, now); err != nil {
			return Decision{}, err
		}
		sts := projections.Statuses(t, v, projections.Call{Dims: c.Dims, Groups: c.Groups, Request: c.Estimate, Permit: true}, now)
		if st := worstExceeded(sts); st != nil {
			return Decision{Statuses: sts}, ExceededError(st, now)
		}
		exp := now.Add(ttl)
		ev := mk(createdID, c.Dims, c.Groups, now, &events.ReservationCreated{Reservation: c.Reservation, Estimate: c.Estimate, ExpiresAt: exp})
		return Decision{Events: []events.Event{ev}, Statuses: sts, Outcome: "created", ExpiresAt: exp}, validate(ev)

	case Reconcile:
		if err := validRef("reservation", c.Reservation); err != nil {
			return Decision{}, err
		}
		if err := validCall(nil, nil, c.Actual); err != nil {
			return Decision{}, err
		}
		if r, ok := t.Reservations[c.Reservation]; ok {
			evs := []events.Event{mk(c.Reservation+":reconciled", nil, nil, now, &events.ReservationReconciled{Reservation: c.Reservation, Actual: c.Actual})}
			// The call succeeded: retry signals on its key no longer stand.
			for _, key := range standingRetries(t, r.Dims, now) {
				evs = append(evs, mk(newID(), key, nil, now, &events.RetryCleared{}))
			}
			return Decision{Events: evs, Outcome: projections.OutcomeReconciled}, validate(evs...)
		}
		cl, ok := settled(t, v, c.Reservation)
		if !ok {
			return Decision{}, notFound("reservation", c.Reservation)
		}
		if cl.Outcome == projections.OutcomeReconciled {
			return Decision{Outcome: projections.OutcomeReconciled}, nil // idempotent
		}
		// Expired or released, yet the call ran: usage is a fact. Charge it
		// in the reservation's own window (its creation time).
		ev := mk(c.Reservation+":charged", cl.Dims, cl.Groups, cl.Time, &events.UsageRecorded{Amounts: c.Actual, Decided: true})
		if v.Seen(ev.ID) {
			return Decision{Outcome: "charged"}, nil
		}
		return Decision{Events: []events.Event{ev}, Outcome: "charged"}, validate(ev)

	case Release:
		if err := validRef("reservation", c.Reservation); err != nil {
			return Decision{}, err
		}
		if _, ok := t.Reservations[c.Reservation]; ok {
			ev := mk(c.Reservation+":released", nil, nil, now, &events.ReservationReleased{Reservation: c.Reservation, Reason: c.Reason})
			return Decision{Events: []events.Event{ev}, Outcome: projections.OutcomeReleased}, validate(ev)
		}
		if cl, ok := settled(t, v, c.Reservation); ok {
			return Decision{Outcome: cl.Outcome}, nil // idempotent: already settled
		}
		return Decision{}, notFound("reservation", c.Reservation)

	case Expire:
		r, ok := t.Reservations[c.Reservation]
		if !ok || r.ExpiresAt.After(now) {
			return Decision{}, nil
		}
		ev := mk(c.Reservation+":expired", nil, nil, now, &events.ReservationExpired{Reservation: c.Reservation})
		return Decision{Events: []events.Event{ev}, Outcome: projections.OutcomeExpired}, validate(ev)

	case SignalRetry:
		if len(c.Key) == 0 {
			return Decision{}, &events.Error{Code: events.CodeInvalidArgument, Message: "key: at least one dimension (e.g. model, location, metric)", Details: map[string]any{"field": "key"}}
		}
		d, err := ParseRetryDelay(c.RetryDelay)
		if err != nil {
			return Decision{}, err
		}
		until := now.Add(d)
		ev := mk(newID(), c.Key, nil, now, &events.RetrySignalled{RetryUntil: until, RetryDelay: c.RetryDelay, QuotaMetric: c.QuotaMetric, QuotaID: c.QuotaID, QuotaDimensions: c.QuotaDimensions})
		return Decision{Events: []events.Event{ev}, ExpiresAt: until}, validate(ev)

	case ClearRetry:
		if _, ok := t.Retries[projections.RetryKey(c.Key)]; !ok {
			return Decision{}, nil
		}
		ev := mk(newID(), c.Key, nil, now, &events.RetryCleared{})
		return Decision{Events: []events.Event{ev}}, validate(ev)

	case BeginWorkflow:
		if err := validRef("workflow", c.Workflow); err != nil {
			return Decision{}, err
		}
		if err := validCall(c.Dims, c.Groups, events.Amounts{}); err != nil {
			return Decision{}, err
		}
		if _, ok := t.Workflows[c.Workflow]; ok {
			return Decision{Outcome: "exists", MaxSteps: maxSteps(t, c.Dims, c.Groups)}, nil
		}
		if v.Seen(c.Workflow + ":begun") {
			return Decision{}, &events.Error{Code: events.CodeConflict, Message: fmt.Sprintf("workflow %s already ran", c.Workflow), Details: map[string]any{"workflow": c.Workflow}, Suggestion: "use a new workflow id"}
		}
		if err := retryBlock(t, c.Dims, now); err != nil {
			return Decision{}, err
		}
		sts := projections.Statuses(t, v, projections.Call{Dims: c.Dims, Groups: c.Groups, Workflows: 1}, now)
		for i := range sts {
			st := &sts[i]
			if st.Exceeded && !st.Soft && st.Limit.Metric == events.MetricWorkflows {
				in := max(st.ResetsAt.Sub(now), 0)
				e := &events.Error{
					Code:       events.CodeWorkflowLimit,
					Message:    fmt.Sprintf("workflow limit of quota %s reached: %d of %d workflows this period, resets in %s", st.Quota, st.Used, st.Limit.Max, Humanize(in)),
					Details:    map[string]any{"quota": st.Quota, "current": st.Used, "limit": st.Limit.Max, "resets_at": st.ResetsAt.UTC().Format(time.RFC3339)},
					Suggestion: "wait for the quota to reset, or combine work into fewer workflows",
				}
				return Decision{Statuses: sts}, e.WithRetryAfter(in)
			}
		}
		if st := worstExceeded(sts); st != nil {
			return Decision{Statuses: sts}, ExceededError(st, now)
		}
		ev := mk(c.Workflow+":begun", c.Dims, c.Groups, now, &events.WorkflowBegun{Workflow: c.Workflow})
		return Decision{Events: []events.Event{ev}, Statuses: sts, Outcome: "begun", MaxSteps: maxSteps(t, c.Dims, c.Groups)}, validate(ev)

	case StepWorkflow:
		w, ok := t.Workflows[c.Workflow]
		if !ok {
			return Decision{}, notFound("workflow", c.Workflow)
		}
		limit := maxSteps(t, w.Dims, w.Groups)
		if limit > 0 && w.Steps >= limit {
			return Decision{Steps: w.Steps, MaxSteps: limit}, &events.Error{
				Code:       events.CodeStepLimit,
				Message:    fmt.Sprintf("workflow %s has used all %d of its steps", c.Workflow, limit),
				Details:    map[string]any{"workflow": c.Workflow, "steps_executed": w.Steps, "max_steps": limit},
				Suggestion: "end this workflow and begin a new one, or break the task into smaller workflows",
			}
		}
		step := w.Steps + 1
		ev := mk(fmt.Sprintf("%s:step:%d", c.Workflow, step), w.Dims, w.Groups, now, &events.WorkflowStepped{Workflow: c.Workflow, Step: step})
		return Decision{Events: []events.Event{ev}, Steps: step, MaxSteps: limit}, validate(ev)

	case EndWorkflow:
		w, ok := t.Workflows[c.Workflow]
		if !ok {
			if v.Seen(c.Workflow + ":ended") {
				return Decision{Outcome: "ended"}, nil
			}
			return Decision{}, notFound("workflow", c.Workflow)
		}
		ev := mk(c.Workflow+":ended", w.Dims, w.Groups, now, &events.WorkflowEnded{Workflow: c.Workflow, Outcome: c.Outcome})
		return Decision{Events: []events.Event{ev}, Steps: w.Steps, Outcome: "ended"}, validate(ev)
	}
	return Decision{}, fmt.Errorf("decide: unknown command %T", cmd)
}

func validate(evs ...events.Event) error {
	for i := range evs {
		if err := evs[i].Validate(); err != nil {
			return err
		}
	}
	return nil
}

// validCall validates a call's dimensions and amounts as the usage event it
// would become.
func validCall(dims events.Dimensions, groups []string, a events.Amounts) error {
	probe := events.New("probe", "probe", time.Unix(946684800, 0), dims, &events.UsageRecorded{Amounts: a})
	probe.Groups = groups
	return probe.Validate()
}

func validRef(field, id string) error {
	if id == "" || len(id) > maxRefLen {
		return &events.Error{Code: events.CodeInvalidArgument, Message: fmt.Sprintf("%s: must be 1-%d printable ASCII characters without spaces", field, maxRefLen), Details: map[string]any{"field": field}}
	}
	probe := events.New(id, "probe", time.Unix(946684800, 0), nil, &events.ReservationReleased{Reservation: id})
	if probe.Validate() != nil {
		return &events.Error{Code: events.CodeInvalidArgument, Message: fmt.Sprintf("%s: must be 1-%d printable ASCII characters without spaces", field, maxRefLen), Details: map[string]any{"field": field}}
	}
	return nil
}

func notFound(what, id string) error {
	return &events.Error{Code: events.CodeNotFound, Message: fmt.Sprintf("no %s %q", what, id), Details: map[string]any{what: id}}
}

// worstExceeded is the refusing limit that resets last: waiting for an
// earlier one would not be enough.
func worstExceeded(sts []projections.LimitStatus) *projections.LimitStatus {
	var worst *projections.LimitStatus
	for i := range sts {
		st := &sts[i]
		if Refuses(st) && (worst == nil || st.ResetsAt.After(worst.ResetsAt)) {
			worst = st
		}
	}
	return worst
}

// Refuses reports whether a limit's status refuses the call it was computed
// for: an exceeded hard limit. A full limit on workflows or on a named action
// refuses only a call that would add to it: when no more workflows may begin,
// the running ones may still use tokens (seed 003), and a spent new_run does
// not refuse an ai_query (seed 000 limits each action on its own).
func Refuses(st *projections.LimitStatus) bool {
	if !st.Exceeded || st.Soft {
		return false
	}
	m := st.Limit.Metric
	if st.Requested == 0 && (m == events.MetricWorkflows || strings.HasPrefix(string(m), events.ActionPrefix)) {
		return false
	}
	return true
}

// retryBlock returns retry_later when a standing retry signal's key is
// contained in the call's dimensions.
func retryBlock(t *projections.Tenant, dims events.Dimensions, now time.Time) error {
	var until time.Time
	var hit *projections.Retry
	for _, k := range standingRetryKeys(t, dims, now) {
		r := t.Retries[k]
		if r.Signal.RetryUntil.After(until) {
			until, hit = r.Signal.RetryUntil, &r
		}
	}
	if hit == nil {
		return nil
	}
	e := &events.Error{
		Code:       events.CodeRetryLater,
		Message:    fmt.Sprintf("upstream asked to retry after %s (%s)", until.UTC().Format(time.RFC3339), Humanize(until.Sub(now))),
		Details:    map[string]any{"retry_until": until.UTC().Format(time.RFC3339Nano), "key": projections.RetryKey(hit.Key)},
		Suggestion: "wait until retry_until; a successful call clears the signal",
	}
	if hit.Signal.QuotaMetric != "" {
		e.Details["quota_metric"] = hit.Signal.QuotaMetric
	}
	if hit.Signal.QuotaID != "" {
		e.Details["quota_id"] = hit.Signal.QuotaID
	}
	return e.WithRetryAfter(until.Sub(now))
}

// standingRetryKeys returns, sorted, the keys of retry signals in force at
// now whose dimensions are all in dims.
func standingRetryKeys(t *projections.Tenant, dims events.Dimensions, now time.Time) []string {
	var keys []string
	for k, r := range t.Retries {
		if !r.Signal.RetryUntil.After(now) {
			continue
		}
		match := true
		for name, val := range r.Key {
			if dims[name] != val {
				match = false
				break
			}
		}
		if match {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

func standingRetries(t *projections.Tenant, dims events.Dimensions, now time.Time) []events.Dimensions {
	var out []events.Dimensions
	for _, k := range standingRetryKeys(t, dims, now) {
		out = append(out, t.Retries[k].Key)
	}
	return out
}

// maxSteps is the smallest max_steps of the quotas matching a workflow (0
// when none limits steps).
func maxSteps(t *projections.Tenant, dims events.Dimensions, groups []string) int64 {
	var m int64
	for _, id := range t.QuotaIDs() {
		q := &t.Quotas[id].Quota
		if q.MaxSteps > 0 && q.Matches(dims, groups) && (m == 0 || q.MaxSteps < m) {
			m = q.MaxSteps
		}
	}
	return m
}

// ParseRetryDelay parses a RetryInfo retryDelay such as "60s" or "1.5s"
// (also Go durations such as "2m").
func ParseRetryDelay(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 || d > MaxTTL {
		return 0, &events.Error{Code: events.CodeInvalidArgument, Message: fmt.Sprintf("retry_delay %q: want a positive duration such as \"60s\", at most %s", s, MaxTTL), Details: map[string]any{"field": "retry_delay"}}
	}
	return d, nil
}

func sameAmounts(a, b events.Amounts) bool {
	return a.Tokens == b.Tokens && a.InputTokens == b.InputTokens && a.OutputTokens == b.OutputTokens &&
		a.Requests == b.Requests && a.Cost == b.Cost && maps.Equal(a.Actions, b.Actions)
}
