package dashboard

import (
	"context"
	"errors"
	"time"

	"github.com/ledgerworks/ledger/api"
	"github.com/ledgerworks/ledger/events"
)

// Source is what the dashboard shows. Every method must be safe to call
// concurrently; views are computed for each watcher, at most a few times a
// second each.
type Source interface {
	// Tenants lists tenants in name order: those starting with q.Prefix
	// and sorting after q.After, at most q.Limit, with a summary of each,
	// and the latest denials across tenants.
	Tenants(ctx context.Context, q TenantQuery) (TenantList, error)
	// Tenant is one tenant's view. A valid name the ledger has no event of
	// is no error: its view says Known false.
	Tenant(ctx context.Context, tenant string) (TenantView, error)
	// Partitions says who owns each partition and how far every member is.
	Partitions(ctx context.Context) (PartitionsView, error)
	// Changed returns a channel that is closed at the next change of what
	// the views show (the projection advanced, a denial was recorded):
	// take it, read the views, wait on it, take it again.
	Changed() <-chan struct{}
}

// ErrInvalid is wrapped by a Source's errors about the request itself (a
// name that cannot be a tenant): the dashboard answers them with 400.
var ErrInvalid = errors.New("invalid request")

// TenantQuery selects a page of tenants.
type TenantQuery struct {
	Prefix string
	After  string
	Limit  int
}

// TenantList is a page of tenants.
type TenantList struct {
	Tenants []TenantSummary `json:"tenants"`
	// More says whether tenants follow the last one (ask again with After
	// set to its name).
	More bool `json:"more"`
	// Denials are the latest denials of any tenant, newest first.
	Denials []Denial `json:"denials"`
}

// TenantSummary is one row of the tenant list.
type TenantSummary struct {
	Name      string `json:"name"`
	Partition int    `json:"partition"`
	Quotas    int    `json:"quotas"`
	// PeakPercent is the highest percent_used among the limits looked at,
	// and PeakLimit says which ("daily-tokens tokens, user=ana").
	PeakPercent  float64 `json:"peak_percent"`
	PeakLimit    string  `json:"peak_limit,omitempty"`
	Warnings     int     `json:"warnings"`
	Exceeded     int     `json:"exceeded"`
	Reservations int     `json:"reservations"`
	Workflows    int     `json:"workflows"`
	Retries      int     `json:"retries"`
	// Denials counts the tenant's denials since the ledger started (in
	// memory: a restart begins again at 0).
	Denials    uint64     `json:"denials"`
	LastDenial *time.Time `json:"last_denial,omitempty"`
	// Sampled: a quota has more splits than the summary looked at, so the
	// peak is of those only.
	Sampled bool `json:"sampled,omitempty"`
}

// TenantView is everything the tenant page shows.
type TenantView struct {
	Tenant string `json:"tenant"`
	// Known is false for a tenant the ledger holds no event of.
	Known      bool        `json:"known"`
	Partition  int         `json:"partition"`
	AppliedSeq uint64      `json:"applied_seq"`
	Time       time.Time   `json:"time"` // the ledger's clock when the view was made
	Quotas     []QuotaView `json:"quotas"`
	// Reservations are the open reservations, soonest expiry first, at most
	// a page; ReservationsTotal counts them all. Workflows likewise, oldest
	// first.
	Reservations      []ReservationView    `json:"reservations"`
	ReservationsTotal int                  `json:"reservations_total"`
	Workflows         []api.ActiveWorkflow `json:"workflows"`
	WorkflowsTotal    int                  `json:"workflows_total"`
	// Retries are the retry signals in force, latest end first.
	Retries []RetryView `json:"retries"`
	// Denials are the tenant's latest denials, newest first; DenialsTotal
	// counts them since the ledger started.
	Denials      []Denial `json:"denials"`
	DenialsTotal uint64   `json:"denials_total"`
}

// QuotaView is a quota in force and its limits' state for its splits.
type QuotaView struct {
	ID          string            `json:"id"`
	Scope       map[string]string `json:"scope,omitempty"`
	Split       []string          `json:"split,omitempty"`
	Enforcement string            `json:"enforcement"`
	WarnPercent int64             `json:"warn_percent"`
	MaxSteps    int64             `json:"max_steps,omitempty"`
	Since       time.Time         `json:"since"`
	// Splits are the split values with counters, hottest first (an
	// unsplit quota has one, ""). SplitsSeen counts the splits looked at,
	// and SplitsMore says there are more than that.
	Splits     []SplitView `json:"splits"`
	SplitsSeen int         `json:"splits_seen"`
	SplitsMore bool        `json:"splits_more,omitempty"`
}

// SplitView is the state of a quota's limits for one split value, as a
// check would answer it (api.LimitStatus).
type SplitView struct {
	Split  string            `json:"split"`
	Limits []api.LimitStatus `json:"limits"`
}

// ReservationView is an open reservation.
type ReservationView struct {
	ID        string            `json:"id"`
	Time      time.Time         `json:"time"`
	ExpiresAt time.Time         `json:"expires_at"`
	Dims      events.Dimensions `json:"dims,omitempty"`
	Estimate  events.Amounts    `json:"estimate"`
}

// RetryView is a retry signal in force: calls on Key are refused until
// RetryUntil.
type RetryView struct {
	Key        events.Dimensions `json:"key"`
	RetryUntil time.Time         `json:"retry_until"`
	RetryDelay string            `json:"retry_delay,omitempty"`
	QuotaID    string            `json:"quota_id,omitempty"`
	Metric     string            `json:"quota_metric,omitempty"`
}

// Denial is a request the ledger refused for a limit (quota_exceeded,
// retry_later, workflow_limit, step_limit, unknown_project): denials
// append no event, so the ledger keeps the latest in memory only.
type Denial struct {
	Time       time.Time `json:"time"`
	Tenant     string    `json:"tenant"`
	Op         string    `json:"op"`
	Code       string    `json:"code"`
	Reason     string    `json:"reason,omitempty"`
	Message    string    `json:"message"`
	Quota      string    `json:"quota,omitempty"`
	RetryAfter int64     `json:"retry_after,omitempty"`
}

// PartitionsView is the cluster as the members report it.
type PartitionsView struct {
	// Member is the process serving the dashboard.
	Member     string             `json:"member"`
	StreamSeq  uint64             `json:"stream_seq"`
	Members    []api.MemberStatus `json:"members"`
	Partitions []PartitionView    `json:"partitions"`
	// Requests counts the requests this member has taken since it began
	// serving its partitions: the page draws their rate.
	Requests int64     `json:"requests"`
	Time     time.Time `json:"time"`
}

// PartitionView is one partition: who owns it (and since which lease
// epoch), who stands by or follows, the stream's last sequence on it and
// how far the owner's projection is behind it.
type PartitionView struct {
	Partition  int      `json:"partition"`
	Owner      string   `json:"owner,omitempty"`
	Epoch      uint64   `json:"epoch,omitempty"`
	Standby    []string `json:"standby,omitempty"`
	Followers  []string `json:"followers,omitempty"`
	LastSeq    uint64   `json:"last_seq"`
	AppliedSeq uint64   `json:"applied_seq"`
	Lag        uint64   `json:"lag"`
}
