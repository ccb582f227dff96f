package events

import "time"

// Amounts are the measured quantities of a call. Every amount is an integer:
// tokens and requests are counts, cost is in micro-units of the tenant's
// currency. Actions count named actions (new_run, activate_workflow, ai_query).
type Amounts struct {
	Tokens       int64  `json:"tokens,omitempty" msgpack:"tokens,omitempty"`
	InputTokens  int64  `json:"input_tokens,omitempty" msgpack:"input_tokens,omitempty"`
	OutputTokens int64  `json:"output_tokens,omitempty" msgpack:"output_tokens,omitempty"`
	Requests     int64  `json:"requests,omitempty" msgpack:"requests,omitempty"`
	Cost         int64  `json:"cost,omitempty" msgpack:"cost,omitempty"`
	Actions      Counts `json:"actions,omitempty" msgpack:"actions,omitempty"`
}

// TotalTokens is Tokens when given, else input plus output tokens.
func (a Amounts) TotalTokens() int64 {
	if a.Tokens != 0 {
		return a.Tokens
	}
	return a.InputTokens + a.OutputTokens
}

// UsageRecorded: a call consumed these amounts. It is a fact: it is counted
// even when it takes a limit past its maximum (the next check then denies).
type UsageRecorded struct {
	Amounts
	// Decided marks usage recorded by the ledger's consume decision rather
	// than reported after the fact by a producer.
	Decided bool `json:"decided,omitempty" msgpack:"decided,omitempty"`
}

// UsageCorrected: amounts to add (or, negative, to take back) for an earlier
// event. Nothing is ever edited; a correction is a new fact.
type UsageCorrected struct {
	Corrects string  `json:"corrects" msgpack:"corrects"`
	Delta    Amounts `json:"delta" msgpack:"delta"`
	Reason   string  `json:"reason,omitempty" msgpack:"reason,omitempty"`
}

// ReservationCreated: an estimate is held against every matching limit until
// the reservation is reconciled, released or expires.
type ReservationCreated struct {
	Reservation string    `json:"reservation" msgpack:"reservation"`
	Estimate    Amounts   `json:"estimate" msgpack:"estimate"`
	ExpiresAt   time.Time `json:"expires_at" msgpack:"expires_at"`
}

// ReservationReconciled: the call ran and used Actual; the hold is replaced by
// the actual usage, in the reservation's own window.
type ReservationReconciled struct {
	Reservation string  `json:"reservation" msgpack:"reservation"`
	Actual      Amounts `json:"actual" msgpack:"actual"`
}

// ReservationReleased: the call never ran; the hold is given back.
type ReservationReleased struct {
	Reservation string `json:"reservation" msgpack:"reservation"`
	Reason      string `json:"reason,omitempty" msgpack:"reason,omitempty"`
}

// ReservationExpired: the ledger gave the hold back after its TTL.
type ReservationExpired struct {
	Reservation string `json:"reservation" msgpack:"reservation"`
}

// RetrySignalled: an upstream answered 429 with RetryInfo; calls on the key
// (the event's dimensions, e.g. model, location, metric) should wait.
type RetrySignalled struct {
	RetryUntil      time.Time         `json:"retry_until" msgpack:"retry_until"`
	RetryDelay      string            `json:"retry_delay,omitempty" msgpack:"retry_delay,omitempty"`
	QuotaMetric     string            `json:"quota_metric,omitempty" msgpack:"quota_metric,omitempty"`
	QuotaID         string            `json:"quota_id,omitempty" msgpack:"quota_id,omitempty"`
	QuotaDimensions map[string]string `json:"quota_dimensions,omitempty" msgpack:"quota_dimensions,omitempty"`
}

// RetryCleared: a call on the key succeeded; the retry signal no longer stands.
type RetryCleared struct{}

// WorkflowBegun: a multi-step workflow started.
type WorkflowBegun struct {
	Workflow string `json:"workflow" msgpack:"workflow"`
}

// WorkflowStepped: a workflow executed one more step.
type WorkflowStepped struct {
	Workflow string `json:"workflow" msgpack:"workflow"`
	Step     int64  `json:"step" msgpack:"step"`
}

// WorkflowEnded: a workflow finished.
type WorkflowEnded struct {
	Workflow string `json:"workflow" msgpack:"workflow"`
	Outcome  string `json:"outcome,omitempty" msgpack:"outcome,omitempty"`
}

// QuotaSet creates or replaces a quota. Replacing keeps the usage already
// counted under the same quota ID.
type QuotaSet struct {
	Quota Quota `json:"quota" msgpack:"quota"`
}

// QuotaDeleted stops enforcing a quota.
type QuotaDeleted struct {
	Quota string `json:"quota" msgpack:"quota"`
}

// CounterReset forces a quota's counters back to zero (for one split, or all
// when Split is empty). It shows in history like any other event.
type CounterReset struct {
	Quota  string `json:"quota" msgpack:"quota"`
	Split  string `json:"split,omitempty" msgpack:"split,omitempty"`
	Reason string `json:"reason,omitempty" msgpack:"reason,omitempty"`
}

// PlanSet attaches static plan values to a project (or, with Project empty,
// to the whole tenant).
type PlanSet struct {
	Project          string `json:"project,omitempty" msgpack:"project,omitempty"`
	RunTimeoutMs     int64  `json:"run_timeout_ms,omitempty" msgpack:"run_timeout_ms,omitempty"`
	SaveDataclips    bool   `json:"save_dataclips,omitempty" msgpack:"save_dataclips,omitempty"`
	RetentionDays    []int  `json:"retention_days,omitempty" msgpack:"retention_days,omitempty"`
	RetentionMessage string `json:"retention_message,omitempty" msgpack:"retention_message,omitempty"`
}

func (*UsageRecorded) EventType() Type         { return TypeUsageRecorded }
func (*UsageCorrected) EventType() Type        { return TypeUsageCorrected }
func (*ReservationCreated) EventType() Type    { return TypeReservationCreated }
func (*ReservationReconciled) EventType() Type { return TypeReservationReconciled }
func (*ReservationReleased) EventType() Type   { return TypeReservationReleased }
func (*ReservationExpired) EventType() Type    { return TypeReservationExpired }
func (*RetrySignalled) EventType() Type        { return TypeRetrySignalled }
func (*RetryCleared) EventType() Type          { return TypeRetryCleared }
func (*WorkflowBegun) EventType() Type         { return TypeWorkflowBegun }
func (*WorkflowStepped) EventType() Type       { return TypeWorkflowStepped }
func (*WorkflowEnded) EventType() Type         { return TypeWorkflowEnded }
func (*QuotaSet) EventType() Type              { return TypeQuotaSet }
func (*QuotaDeleted) EventType() Type          { return TypeQuotaDeleted }
func (*CounterReset) EventType() Type          { return TypeCounterReset }
func (*PlanSet) EventType() Type               { return TypePlanSet }
