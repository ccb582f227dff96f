package events

import "time"

// Version is the envelope version written by this code. Readers accept every
// version they know; a changed envelope is a new version, never an edit.
const Version = 1

// Type names an event type on the wire. These strings are stored forever:
// never rename or reuse one. A changed payload gets a new name with a new
// version suffix, and the old one keeps being read.
type Type string

// Every event type of the ledger.
const (
	TypeUsageRecorded         Type = "usage.recorded.v1"
	TypeUsageCorrected        Type = "usage.corrected.v1"
	TypeReservationCreated    Type = "reservation.created.v1"
	TypeReservationReconciled Type = "reservation.reconciled.v1"
	TypeReservationReleased   Type = "reservation.released.v1"
	TypeReservationExpired    Type = "reservation.expired.v1"
	TypeRetrySignalled        Type = "retry.signalled.v1"
	TypeRetryCleared          Type = "retry.cleared.v1"
	TypeWorkflowBegun         Type = "workflow.begun.v1"
	TypeWorkflowStepped       Type = "workflow.stepped.v1"
	TypeWorkflowEnded         Type = "workflow.ended.v1"
	TypeQuotaSet              Type = "quota.set.v1"
	TypeQuotaDeleted          Type = "quota.deleted.v1"
	TypeCounterReset          Type = "counter.reset.v1"
	TypePlanSet               Type = "plan.set.v1"
)

// newPayload maps each known type to a constructor of its payload. It is a
// plain table, not a registry filled by init(): adding a type means adding a
// line here, a payload type, and a golden file.
var newPayload = map[Type]func() Payload{
	TypeUsageRecorded:         func() Payload { return new(UsageRecorded) },
	TypeUsageCorrected:        func() Payload { return new(UsageCorrected) },
	TypeReservationCreated:    func() Payload { return new(ReservationCreated) },
	TypeReservationReconciled: func() Payload { return new(ReservationReconciled) },
	TypeReservationReleased:   func() Payload { return new(ReservationReleased) },
	TypeReservationExpired:    func() Payload { return new(ReservationExpired) },
	TypeRetrySignalled:        func() Payload { return new(RetrySignalled) },
	TypeRetryCleared:          func() Payload { return new(RetryCleared) },
	TypeWorkflowBegun:         func() Payload { return new(WorkflowBegun) },
	TypeWorkflowStepped:       func() Payload { return new(WorkflowStepped) },
	TypeWorkflowEnded:         func() Payload { return new(WorkflowEnded) },
	TypeQuotaSet:              func() Payload { return new(QuotaSet) },
	TypeQuotaDeleted:          func() Payload { return new(QuotaDeleted) },
	TypeCounterReset:          func() Payload { return new(CounterReset) },
	TypePlanSet:               func() Payload { return new(PlanSet) },
}

// Types returns every known event type, in a fixed order.
func Types() []Type {
	return []Type{
		TypeUsageRecorded, TypeUsageCorrected,
		TypeReservationCreated, TypeReservationReconciled, TypeReservationReleased, TypeReservationExpired,
		TypeRetrySignalled, TypeRetryCleared,
		TypeWorkflowBegun, TypeWorkflowStepped, TypeWorkflowEnded,
		TypeQuotaSet, TypeQuotaDeleted, TypeCounterReset, TypePlanSet,
	}
}

// Known reports whether t is a type this code can decode.
func (t Type) Known() bool { _, ok := newPayload[t]; return ok }

// NewPayload returns an empty payload for t, or false for an unknown type.
func NewPayload(t Type) (Payload, bool) {
	f, ok := newPayload[t]
	if !ok {
		return nil, false
	}
	return f(), true
}

// Payload is the typed body of an event.
type Payload interface {
	// EventType is the type the payload is stored under.
	EventType() Type
	// validate checks the payload's own fields.
	validate() *Error
}

// Dimensions describe who and what an event is about: user, project, agent,
// model, location, operation, session and any others a deployment uses.
// Quotas match and split on them.
type Dimensions map[string]string

// Well-known dimension names. Others are allowed.
const (
	DimUser      = "user"
	DimGroup     = "group" // matches any of Event.Groups
	DimProject   = "project"
	DimAgent     = "agent"
	DimModel     = "model"
	DimLocation  = "location"
	DimOperation = "operation"
	DimSession   = "session"
	DimMetric    = "metric"
	DimAction    = "action"
	DimWorkflow  = "workflow"
)

// Event is one immutable fact in the ledger.
type Event struct {
	// ID is unique per tenant and is the idempotency key: the same ID appended
	// twice is counted once.
	ID     string
	Type   Type
	Tenant string
	// Dims are the event's dimensions; Groups are the groups its user belongs
	// to, so that a group quota can apply to each member.
	Dims   Dimensions
	Groups []string
	// Time is when the event happened, as told by its producer or decider.
	// Folding uses it to pick windows; it never reads the wall clock.
	Time    time.Time
	Payload Payload
}

// New returns an event whose type is taken from its payload.
func New(id, tenant string, at time.Time, dims Dimensions, p Payload) Event {
	return Event{ID: id, Type: p.EventType(), Tenant: tenant, Dims: dims, Time: at, Payload: p}
}

// Dim returns the value of a dimension, or "".
func (e *Event) Dim(name string) string { return e.Dims[name] }
