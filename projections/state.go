package projections

import (
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ledgerworks/ledger/events"
)

// Tenant is what the fold keeps for one tenant besides its counters: the
// rules in force (quotas, plans) and the open things (reservations,
// workflows, retry signals, rolling windows). It is small and lives in memory
// while the tenant is active; Store persists it with the counters.
type Tenant struct {
	Name         string                    `msgpack:"name"`
	Quotas       map[string]*QuotaState    `msgpack:"quotas,omitempty"`
	Epochs       map[string]uint32         `msgpack:"epochs,omitempty"`
	Rolling      map[string]RollingWindow  `msgpack:"rolling,omitempty"`
	Reservations map[string]*Reservation   `msgpack:"reservations,omitempty"`
	Retries      map[string]Retry          `msgpack:"retries,omitempty"`
	Workflows    map[string]*Workflow      `msgpack:"workflows,omitempty"`
	Plans        map[string]events.PlanSet `msgpack:"plans,omitempty"`
	// LastDecision is the stream sequence of the tenant's last message on
	// its decision subject: a decider fences its next append on it.
	LastDecision uint64 `msgpack:"last_decision,omitempty"`
	// LastSettled is the latest settlement time (Unix ns) of any of the
	// tenant's reservations. Settled reservations are not part of this
	// state, which is rewritten at every commit: they are kept apart (see
	// Deltas.Settled) and remembered for ClosedRetention before LastSettled.
	LastSettled int64 `msgpack:"last_settled,omitempty"`

	order []string // quota IDs in sorted order, rebuilt when quotas change
}

// QuotaState is a quota in force.
type QuotaState struct {
	Quota events.Quota `msgpack:"quota"`
	Since time.Time    `msgpack:"since"`

	limitKeys []string
}

// LimitKey names the counters of limit i: its metric and window. Editing a
// limit's maximum keeps its counters; changing its window starts new ones.
func (q *QuotaState) LimitKey(i int) string { return q.limitKeys[i] }

func newQuotaState(q events.Quota, since time.Time) *QuotaState {
	qs := &QuotaState{Quota: q, Since: since}
	qs.init()
	return qs
}

func (q *QuotaState) init() {
	q.limitKeys = make([]string, len(q.Quota.Limits))
	for j, l := range q.Quota.Limits {
		q.limitKeys[j] = limitKey(l)
	}
}

func limitKey(l events.Limit) string {
	var b strings.Builder
	b.WriteString(string(l.Metric))
	b.WriteByte('|')
	b.WriteString(string(l.Window.Kind))
	b.WriteByte(':')
	if l.Window.Kind == events.Calendar {
		b.WriteString(l.Window.Unit)
	} else {
		b.WriteString(strconv.FormatInt(int64(l.Window.Length()/time.Second), 10))
	}
	if l.Window.TZ != "" {
		b.WriteByte('@')
		b.WriteString(l.Window.TZ)
	}
	return b.String()
}

// RollingWindow is the start of a rolling window, and of the one before it so
// that a late event still lands in its own window.
type RollingWindow struct {
	Start int64 `msgpack:"start"`
	Prev  int64 `msgpack:"prev,omitempty"`
}

// Hold is an amount a reservation holds on one counter.
type Hold struct {
	Key    CounterKey `msgpack:"key"`
	Amount int64      `msgpack:"amount"`
}

// Reservation is an open reservation.
type Reservation struct {
	ID        string            `msgpack:"id"`
	Time      time.Time         `msgpack:"time"`
	ExpiresAt time.Time         `msgpack:"expires_at"`
	Dims      events.Dimensions `msgpack:"dims,omitempty"`
	Groups    []string          `msgpack:"groups,omitempty"`
	Estimate  events.Amounts    `msgpack:"estimate"`
	Holds     []Hold            `msgpack:"holds,omitempty"`
}

// Retry is a standing retry signal.
type Retry struct {
	Key    events.Dimensions     `msgpack:"key"`
	Signal events.RetrySignalled `msgpack:"signal"`
	At     time.Time             `msgpack:"at"`
}

// Workflow is an active workflow.
type Workflow struct {
	ID     string            `msgpack:"id"`
	Begun  time.Time         `msgpack:"begun"`
	Steps  int64             `msgpack:"steps"`
	Dims   events.Dimensions `msgpack:"dims,omitempty"`
	Groups []string          `msgpack:"groups,omitempty"`
}

// NewTenant returns the empty state of a tenant.
func NewTenant(name string) *Tenant { return &Tenant{Name: name} }

// QuotaIDs returns the IDs of the quotas in force, sorted. The slice is
// shared: do not modify it.
func (t *Tenant) QuotaIDs() []string { return t.order }

// quotasChanged rebuilds what is derived from the quotas. State is only ever
// changed by Evolve (or decoded), so readers never write.
func (t *Tenant) quotasChanged() {
	t.order = make([]string, 0, len(t.Quotas))
	for id, qs := range t.Quotas {
		t.order = append(t.order, id)
		if qs.limitKeys == nil {
			qs.init()
		}
	}
	sort.Strings(t.order)
}

// Restored prepares a tenant decoded from storage for use.
func (t *Tenant) Restored() *Tenant {
	t.quotasChanged()
	return t
}

// epoch is the reset epoch of a quota's counters for one split. It grows with
// every reset of the quota or of the split, so a reset starts new counters
// without deleting anything.
func (t *Tenant) epoch(quota, split string) uint32 {
	if len(t.Epochs) == 0 { // no counter was ever reset: the usual case
		return 0
	}
	// The split's key is built in a stack buffer: a map lookup by
	// string(bytes) does not allocate, a concatenation does.
	var buf [128]byte
	k := append(append(append(buf[:0], quota...), 0), split...)
	return t.Epochs[quota] + t.Epochs[string(k)]
}

func (t *Tenant) bumpEpoch(key string) {
	if t.Epochs == nil {
		t.Epochs = map[string]uint32{}
	}
	t.Epochs[key]++
}

// RetryKey is the canonical key of a retry signal: its dimensions as sorted
// name=value pairs.
func RetryKey(d events.Dimensions) string {
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(d[k])
	}
	return b.String()
}

// Observe records the stream metadata of a message of the tenant, whatever
// its events turn out to be (duplicates included).
func (t *Tenant) Observe(m Meta) {
	if m.Decision && m.Seq > t.LastDecision {
		t.LastDecision = m.Seq
	}
}
