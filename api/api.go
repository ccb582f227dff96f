package api

import (
	"time"

	"github.com/ledgerworks/ledger/events"
)

// ServiceName is the NATS micro service name; `nats micro info ledger`.
const ServiceName = "ledger"

// ServiceVersion is the micro service version (semver).
const ServiceVersion = "0.1.0"

// Subjects of the service's endpoints.
const (
	SubjectPrefix        = "ledger.v1"
	SubjectRecordUsage   = SubjectPrefix + ".usage.record"
	SubjectUsage         = SubjectPrefix + ".usage.get"
	SubjectCheck         = SubjectPrefix + ".check"
	SubjectQuotaSet      = SubjectPrefix + ".quota.set"
	SubjectQuotaDelete   = SubjectPrefix + ".quota.delete"
	SubjectQuotaGet      = SubjectPrefix + ".quota.get"
	SubjectQuotaList     = SubjectPrefix + ".quota.list"
	SubjectConsume       = SubjectPrefix + ".consume"
	SubjectReserve       = SubjectPrefix + ".reserve"
	SubjectReconcile     = SubjectPrefix + ".reconcile"
	SubjectRelease       = SubjectPrefix + ".release"
	SubjectRetrySignal   = SubjectPrefix + ".retry.signal"
	SubjectRetryClear    = SubjectPrefix + ".retry.clear"
	SubjectRetryGet      = SubjectPrefix + ".retry.get"
	SubjectWorkflowBegin = SubjectPrefix + ".workflow.begin"
	SubjectWorkflowStep  = SubjectPrefix + ".workflow.step"
	SubjectWorkflowEnd   = SubjectPrefix + ".workflow.end"
	SubjectWorkflowList  = SubjectPrefix + ".workflow.list"
	SubjectLimitAction   = SubjectPrefix + ".action.limit"
	SubjectPlanSet       = SubjectPrefix + ".plan.set"
	SubjectPlanGet       = SubjectPrefix + ".plan.get"
	SubjectCounterReset  = SubjectPrefix + ".counter.reset"
	SubjectBatch         = SubjectPrefix + ".batch"
)

// HeaderErrorCode carries the micro error status on an error reply (the
// stable code is in the body).
const HeaderErrorCode = "Nats-Service-Error-Code"

// ErrorReply is the body of every error reply.
type ErrorReply struct {
	Error *events.Error `json:"error"`
}

// RecordUsageRequest is the body of usage.record: one event object, an array
// of events, or this object. Events of several tenants may be mixed; each
// tenant's events are appended together.
type RecordUsageRequest struct {
	Events []events.Event `json:"events"`
}

// RecordUsageReply acknowledges events durably appended to the stream.
type RecordUsageReply struct {
	Events int    `json:"events"`
	Seq    uint64 `json:"seq"` // stream sequence of the last message appended
}

// TenantRequest names a tenant (usage.get, quota.list).
type TenantRequest struct {
	Tenant   string `json:"tenant"`
	AfterSeq uint64 `json:"after_seq,omitempty"`
}

// UsageReply holds a tenant's all-time totals per metric.
type UsageReply struct {
	Tenant     string `json:"tenant"`
	Totals     Totals `json:"totals"`
	AppliedSeq uint64 `json:"applied_seq"`
}

// QuotaSetRequest creates or replaces a quota.
type QuotaSetRequest struct {
	Tenant string       `json:"tenant"`
	Quota  events.Quota `json:"quota"`
}

// QuotaRequest names one quota (quota.get, quota.delete).
type QuotaRequest struct {
	Tenant   string `json:"tenant"`
	ID       string `json:"id"`
	AfterSeq uint64 `json:"after_seq,omitempty"`
}

// QuotaReply is a quota in force.
type QuotaReply struct {
	Quota events.Quota `json:"quota"`
	Since time.Time    `json:"since"`
	Seq   uint64       `json:"seq,omitempty"` // set by quota.set: the event's stream sequence
}

// QuotaListReply lists a tenant's quotas, by ID.
type QuotaListReply struct {
	Quotas []QuotaReply `json:"quotas"`
}

// WriteReply acknowledges an admin event.
type WriteReply struct {
	Seq uint64 `json:"seq"`
}

// CheckRequest asks whether a call may run now, without consuming anything.
type CheckRequest struct {
	Tenant string            `json:"tenant"`
	Dims   events.Dimensions `json:"dims,omitempty"`
	Groups []string          `json:"groups,omitempty"`
	// Request is what the call would use (its estimate); zero asks whether
	// any room is left.
	Request events.Amounts `json:"request,omitempty"`
	// AfterSeq makes the answer wait until the projection covers this stream
	// sequence (read your own writes across instances).
	AfterSeq uint64 `json:"after_seq,omitempty"`
}

// CheckReply answers a check. Allowed is false when any hard limit would be
// passed; Code and Message then say why, and RetryAfter when to try again.
type CheckReply struct {
	Allowed bool        `json:"allowed"`
	Code    events.Code `json:"code,omitempty"`
	// Reason is seed 000's reason for a denial: too_many_runs,
	// runs_hard_limit, exceeds_limit or unknown_project (retry_later for a
	// standing retry signal).
	Reason     string        `json:"reason,omitempty"`
	Message    string        `json:"message,omitempty"`
	RetryUntil *time.Time    `json:"retry_until,omitempty"`
	RetryAfter int64         `json:"retry_after,omitempty"` // seconds
	Warning    bool          `json:"warning,omitempty"`
	Limits     []LimitStatus `json:"limits"`
	AppliedSeq uint64        `json:"applied_seq"`
	// Degraded is set by the Go client only, never by the ledger and never
	// on the wire: the client's failure policy is fail open and the ledger
	// did not answer, so Allowed is true without any limit checked
	// (client.WithFailurePolicy).
	Degraded bool `json:"-" msgpack:"-"`
}

// LimitStatus is one limit of one matching quota.
type LimitStatus struct {
	Quota       string        `json:"quota"`
	Split       string        `json:"split,omitempty"`
	Metric      events.Metric `json:"metric"`
	Window      events.Window `json:"window"`
	Enforcement string        `json:"enforcement"`
	Limit       int64         `json:"limit"`
	Used        int64         `json:"used"`
	Reserved    int64         `json:"reserved"`
	Requested   int64         `json:"requested,omitempty"`
	Remaining   int64         `json:"remaining"`
	PercentUsed float64       `json:"percent_used"`
	Warning     bool          `json:"warning,omitempty"`
	Exceeded    bool          `json:"exceeded,omitempty"`
	WindowStart *time.Time    `json:"window_start,omitempty"`
	ResetsAt    time.Time     `json:"resets_at"`
	ResetsIn    int64         `json:"resets_in"` // seconds
}

// ConsumeRequest checks and records usage in one atomic step.
type ConsumeRequest struct {
	Tenant  string            `json:"tenant"`
	ID      string            `json:"id,omitempty"` // the usage event id; set it to make retries safe
	Dims    events.Dimensions `json:"dims,omitempty"`
	Groups  []string          `json:"groups,omitempty"`
	Amounts events.Amounts    `json:"amounts"`
}

// DecisionReply answers consume, reconcile, release, retry and workflow
// requests.
type DecisionReply struct {
	Outcome string        `json:"outcome,omitempty"`
	Seq     uint64        `json:"seq,omitempty"` // stream sequence of the decision (0: nothing appended)
	Limits  []LimitStatus `json:"limits,omitempty"`
	Warning bool          `json:"warning,omitempty"`
	// Degraded is set by the Go client only (never on the wire): granted
	// under its fail-open policy without the ledger, nothing recorded.
	Degraded bool `json:"-" msgpack:"-"`
}

// ReserveRequest holds an estimate against every matching limit.
type ReserveRequest struct {
	Tenant      string            `json:"tenant"`
	Reservation string            `json:"reservation"` // chosen by the caller: a retried reserve with the same id is answered, not held twice
	Dims        events.Dimensions `json:"dims,omitempty"`
	Groups      []string          `json:"groups,omitempty"`
	Estimate    events.Amounts    `json:"estimate"`
	TTLMs       int64             `json:"ttl_ms,omitempty"` // default 60,000; at most 86,400,000
}

// ReserveReply confirms a reservation.
type ReserveReply struct {
	Reservation string        `json:"reservation"`
	Outcome     string        `json:"outcome"` // created, or exists for a retried reserve
	ExpiresAt   time.Time     `json:"expires_at"`
	Seq         uint64        `json:"seq,omitempty"`
	Limits      []LimitStatus `json:"limits,omitempty"`
	Warning     bool          `json:"warning,omitempty"`
	// Degraded is set by the Go client only (never on the wire): granted
	// under its fail-open policy without the ledger, nothing held.
	Degraded bool `json:"-" msgpack:"-"`
}

// ReconcileRequest settles a reservation with what the call used.
type ReconcileRequest struct {
	Tenant      string         `json:"tenant"`
	Reservation string         `json:"reservation"`
	Actual      events.Amounts `json:"actual"`
}

// ReleaseRequest gives a reservation back.
type ReleaseRequest struct {
	Tenant      string `json:"tenant"`
	Reservation string `json:"reservation"`
	Reason      string `json:"reason,omitempty"`
}

// MaxBatchOps bounds the operations of one batch request.
const MaxBatchOps = 256

// BatchRequest carries several reservation-path operations in one request.
// The Go client sends its callers' concurrent reserves, reconciles and
// releases this way, so that a busy client pays one round trip per batch
// rather than per call. Each operation is decided as its own request would
// be, and operations on one tenant in the order given.
type BatchRequest struct {
	Ops []BatchOp `json:"ops"`
}

// BatchOp is one operation of a batch: exactly one field is set.
type BatchOp struct {
	Reserve   *ReserveRequest   `json:"reserve,omitempty"`
	Reconcile *ReconcileRequest `json:"reconcile,omitempty"`
	Release   *ReleaseRequest   `json:"release,omitempty"`
}

// BatchReply answers a batch: one result per operation, in order.
type BatchReply struct {
	Results []BatchResult `json:"results"`
}

// BatchResult is one operation's answer: its reply (Reserve for a reserve,
// Decision otherwise) or the typed error its own request would have got. An
// operation refused changes nothing; the others are decided regardless.
type BatchResult struct {
	Reserve  *ReserveReply  `json:"reserve,omitempty"`
	Decision *DecisionReply `json:"decision,omitempty"`
	Error    *events.Error  `json:"error,omitempty"`
}

// RetrySignalRequest reports a 429's RetryInfo for a key such as
// {model, location, metric}.
type RetrySignalRequest struct {
	Tenant          string            `json:"tenant"`
	Key             events.Dimensions `json:"key"`
	RetryDelay      string            `json:"retry_delay"` // "60s"
	QuotaMetric     string            `json:"quota_metric,omitempty"`
	QuotaID         string            `json:"quota_id,omitempty"`
	QuotaDimensions map[string]string `json:"quota_dimensions,omitempty"`
}

// RetryRequest names a retry key (retry.clear, retry.get).
type RetryRequest struct {
	Tenant string            `json:"tenant"`
	Key    events.Dimensions `json:"key"`
}

// RetryReply is the retry state of a key.
type RetryReply struct {
	RetryUntil      *time.Time        `json:"retry_until,omitempty"` // absent: no signal stands
	RetryDelay      string            `json:"retry_delay,omitempty"`
	QuotaMetric     string            `json:"quota_metric,omitempty"`
	QuotaID         string            `json:"quota_id,omitempty"`
	QuotaDimensions map[string]string `json:"quota_dimensions,omitempty"`
	Seq             uint64            `json:"seq,omitempty"`
}

// WorkflowRequest begins, steps or ends a workflow.
type WorkflowRequest struct {
	Tenant   string            `json:"tenant"`
	Workflow string            `json:"workflow"`
	Dims     events.Dimensions `json:"dims,omitempty"`    // begin only
	Groups   []string          `json:"groups,omitempty"`  // begin only
	Outcome  string            `json:"outcome,omitempty"` // end only
}

// WorkflowReply answers a workflow request.
type WorkflowReply struct {
	Workflow  string `json:"workflow"`
	Outcome   string `json:"outcome,omitempty"`
	Steps     int64  `json:"steps"`
	MaxSteps  int64  `json:"max_steps,omitempty"`
	Remaining int64  `json:"remaining_steps,omitempty"`
	Seq       uint64 `json:"seq,omitempty"`
}

// WorkflowListReply lists active workflows.
type WorkflowListReply struct {
	Workflows []ActiveWorkflow `json:"workflows"`
}

// ActiveWorkflow is a workflow that has begun and not ended.
type ActiveWorkflow struct {
	Workflow string            `json:"workflow"`
	Begun    time.Time         `json:"begun"`
	Steps    int64             `json:"steps"`
	Dims     events.Dimensions `json:"dims,omitempty"`
}

// LimitActionRequest asks whether a named action (new_run,
// activate_workflow, ai_query...) may happen, and counts it if so (seed
// 000's limit_action).
type LimitActionRequest struct {
	Tenant string            `json:"tenant"`
	Action string            `json:"action"`
	ID     string            `json:"id,omitempty"`
	Dims   events.Dimensions `json:"dims,omitempty"`
	Groups []string          `json:"groups,omitempty"`
	Count  int64             `json:"count,omitempty"` // default 1
}

// PlanSetRequest sets a project's plan values.
type PlanSetRequest struct {
	Tenant string         `json:"tenant"`
	Plan   events.PlanSet `json:"plan"`
}

// PlanRequest asks for a project's plan.
type PlanRequest struct {
	Tenant  string `json:"tenant"`
	Project string `json:"project,omitempty"`
}

// PlanReply is a project's plan (seed 000's run options and retention).
type PlanReply struct {
	Plan events.PlanSet `json:"plan"`
	Seq  uint64         `json:"seq,omitempty"`
}

// CounterResetRequest forces a quota's counters to zero.
type CounterResetRequest struct {
	Tenant string `json:"tenant"`
	Quota  string `json:"quota"`
	Split  string `json:"split,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// MemberStatus is what a member of the cluster (a ledger process or a
// standalone projector) says about itself on SubjectClusterStatus.
type MemberStatus struct {
	Member string `json:"member"`
	// Role is "ledger" (may own partitions) or "projector" (folds only).
	Role string `json:"role"`
	// Ready is true once the member's projection has caught up with the
	// stream as it was when the member started (health checks use it).
	Ready bool `json:"ready"`
	// AppliedSeq is the last stream sequence folded into its projection,
	// StreamSeq the stream's last sequence when asked, and Lag the
	// difference (events of other partitions included).
	AppliedSeq uint64            `json:"applied_seq"`
	StreamSeq  uint64            `json:"stream_seq"`
	Lag        uint64            `json:"lag"`
	Partitions []PartitionStatus `json:"partitions"`
}

// PartitionStatus is one partition a member folds, and what it does for it.
type PartitionStatus struct {
	Partition int `json:"partition"`
	// State is "owner" (answers and decides), "standby" (folds, takes over
	// when the owner's lease lapses) or "follower" (a projector: folds only).
	State string `json:"state"`
	// Epoch is the revision of the owner's lease at its claim: it grows
	// with every change of owner.
	Epoch uint64 `json:"epoch,omitempty"`
	// Owner is, for a standby, the member holding the partition's lease
	// when last looked at ("" for none).
	Owner string `json:"owner,omitempty"`
}
