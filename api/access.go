package api

// Access is who may send an operation, the unit of the roles' NATS
// permissions (package auth, docs/SECURITY.md): a tenant's service may
// decide and read, a producer only records usage, an admin changes quotas.
type Access string

// Access classes.
const (
	// AccessRead answers from the projection and appends nothing.
	AccessRead Access = "read"
	// AccessUsage records usage after the fact.
	AccessUsage Access = "usage"
	// AccessDecide asks the ledger to decide: reservations, consumes,
	// workflows, retry signals, limit actions.
	AccessDecide Access = "decide"
	// AccessAdmin changes a tenant's quotas, plans and counters.
	AccessAdmin Access = "admin"
)

// Operations maps every request subject (before its tenant token) to its
// access class. The service answers exactly these; a test keeps the two
// lists equal, so a new operation cannot be added without a class.
var Operations = map[string]Access{
	SubjectCheck:         AccessRead,
	SubjectUsage:         AccessRead,
	SubjectQuotaGet:      AccessRead,
	SubjectQuotaList:     AccessRead,
	SubjectRetryGet:      AccessRead,
	SubjectWorkflowList:  AccessRead,
	SubjectPlanGet:       AccessRead,
	SubjectRecordUsage:   AccessUsage,
	SubjectConsume:       AccessDecide,
	SubjectReserve:       AccessDecide,
	SubjectReconcile:     AccessDecide,
	SubjectRelease:       AccessDecide,
	SubjectBatch:         AccessDecide,
	SubjectRetrySignal:   AccessDecide,
	SubjectRetryClear:    AccessDecide,
	SubjectWorkflowBegin: AccessDecide,
	SubjectWorkflowStep:  AccessDecide,
	SubjectWorkflowEnd:   AccessDecide,
	SubjectLimitAction:   AccessDecide,
	SubjectQuotaSet:      AccessAdmin,
	SubjectQuotaDelete:   AccessAdmin,
	SubjectPlanSet:       AccessAdmin,
	SubjectCounterReset:  AccessAdmin,
}
