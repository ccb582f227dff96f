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
	SubjectPrefix      = "ledger.v1"
	SubjectRecordUsage = SubjectPrefix + ".usage.record"
	SubjectUsage       = SubjectPrefix + ".usage.get"
	SubjectCheck       = SubjectPrefix + ".check"
	SubjectQuotaSet    = SubjectPrefix + ".quota.set"
	SubjectQuotaDelete = SubjectPrefix + ".quota.delete"
	SubjectQuotaGet    = SubjectPrefix + ".quota.get"
	SubjectQuotaList   = SubjectPrefix + ".quota.list"
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
	Tenant     string                  `json:"tenant"`
	Totals     map[events.Metric]int64 `json:"totals"`
	AppliedSeq uint64                  `json:"applied_seq"`
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
	Allowed    bool          `json:"allowed"`
	Code       events.Code   `json:"code,omitempty"`
	Message    string        `json:"message,omitempty"`
	RetryAfter int64         `json:"retry_after,omitempty"` // seconds
	Warning    bool          `json:"warning,omitempty"`
	Limits     []LimitStatus `json:"limits"`
	AppliedSeq uint64        `json:"applied_seq"`
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
