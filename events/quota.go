package events

// Metric names what a limit counts. Named actions are "action:<name>".
type Metric string

// Metrics a limit can count.
const (
	MetricTokens       Metric = "tokens"
	MetricInputTokens  Metric = "input_tokens"
	MetricOutputTokens Metric = "output_tokens"
	MetricRequests     Metric = "requests"
	MetricCost         Metric = "cost"
	MetricWorkflows    Metric = "workflows"
	MetricSteps        Metric = "steps" // per workflow, not windowed
	// MetricConcurrent counts open reservations: concurrency permits. Its
	// window is ignored: a permit is held until the reservation settles.
	MetricConcurrent Metric = "concurrent"
)

// ActionPrefix starts the metric of a named action ("action:new_run").
const ActionPrefix = "action:"

// ActionMetric is the metric counting a named action.
func ActionMetric(name string) Metric { return Metric(ActionPrefix + name) }

// Valid reports whether m is a metric a limit can count.
func (m Metric) Valid() bool {
	switch m {
	case MetricTokens, MetricInputTokens, MetricOutputTokens, MetricRequests, MetricCost, MetricWorkflows, MetricSteps, MetricConcurrent:
		return true
	}
	return len(m) > len(ActionPrefix) && string(m[:len(ActionPrefix)]) == ActionPrefix && validToken(string(m[len(ActionPrefix):]), 64)
}

// Of returns the amount of metric m in a (0 for workflow metrics).
func (a Amounts) Of(m Metric) int64 {
	switch m {
	case MetricTokens:
		return a.TotalTokens()
	case MetricInputTokens:
		return a.InputTokens
	case MetricOutputTokens:
		return a.OutputTokens
	case MetricRequests:
		return a.Requests
	case MetricCost:
		return a.Cost
	}
	if len(m) > len(ActionPrefix) && string(m[:len(ActionPrefix)]) == ActionPrefix {
		return a.Actions[string(m[len(ActionPrefix):])]
	}
	return 0
}

// WindowKind says how a limit's window moves.
type WindowKind string

// Window kinds.
const (
	// Sliding: the last Seconds, counted in buckets of Seconds/60 (at least 1 s).
	Sliding WindowKind = "sliding"
	// Calendar: the current hour, day, week (from Monday) or month in TZ.
	Calendar WindowKind = "calendar"
	// Rolling: starts at first use and resets Seconds later (seed 001).
	Rolling WindowKind = "rolling"
)

// Calendar units, also accepted as shorthands for sliding and rolling lengths.
const (
	UnitHour  = "hour"
	UnitDay   = "day"
	UnitWeek  = "week"
	UnitMonth = "month"
)

// Window is the period a limit applies to.
type Window struct {
	Kind    WindowKind `json:"kind" msgpack:"kind"`
	Unit    string     `json:"unit,omitempty" msgpack:"unit,omitempty"`
	Seconds int64      `json:"seconds,omitempty" msgpack:"seconds,omitempty"`
	TZ      string     `json:"tz,omitempty" msgpack:"tz,omitempty"`
}

// Limit caps one metric over one window.
type Limit struct {
	Metric Metric `json:"metric" msgpack:"metric"`
	Max    int64  `json:"max" msgpack:"max"`
	Window Window `json:"window" msgpack:"window"`
}

// Enforcement says whether a quota denies (hard) or only warns (soft).
type Enforcement string

// Enforcement modes.
const (
	Hard Enforcement = "hard"
	Soft Enforcement = "soft"
)

// Quota is a set of limits that applies to every call whose dimensions match
// Scope. Each distinct combination of the Split dimensions gets its own
// counters: a group quota split by user applies to each user of the group.
type Quota struct {
	ID     string            `json:"id" msgpack:"id"`
	Scope  map[string]string `json:"scope,omitempty" msgpack:"scope,omitempty"`
	Split  []string          `json:"split,omitempty" msgpack:"split,omitempty"`
	Limits []Limit           `json:"limits" msgpack:"limits,omitempty"` // omitempty: nil and [] encode the same
	// Costs multiply the tokens metric per operation dimension (seed 003:
	// query 1, embedding 5, vector_search 10, write 2, transaction 3).
	Costs Counts `json:"costs,omitempty" msgpack:"costs,omitempty"`
	// WarnPercent flags a check once used reaches this percent of a limit.
	WarnPercent int64       `json:"warn_percent,omitempty" msgpack:"warn_percent,omitempty"`
	Enforcement Enforcement `json:"enforcement,omitempty" msgpack:"enforcement,omitempty"`
	// MaxSteps caps the steps of each workflow (seed 003).
	MaxSteps int64 `json:"max_steps,omitempty" msgpack:"max_steps,omitempty"`
}

// Matches reports whether the dimensions and groups of a call fall in the
// quota's scope. The scope key "group" matches any of the call's groups.
func (q *Quota) Matches(dims Dimensions, groups []string) bool {
	for k, want := range q.Scope {
		if k == DimGroup {
			found := false
			for _, g := range groups {
				if g == want {
					found = true
					break
				}
			}
			if !found {
				return false
			}
			continue
		}
		if dims[k] != want {
			return false
		}
	}
	return true
}

// SplitKey is the counter key of a call under this quota: the values of the
// split dimensions joined by "/", in the quota's order ("" when unsplit).
func (q *Quota) SplitKey(dims Dimensions) string {
	switch len(q.Split) {
	case 0:
		return ""
	case 1: // the usual split, by one dimension: its value, not a copy
		return dims[q.Split[0]]
	}
	n := 0
	for _, d := range q.Split {
		n += len(dims[d]) + 1
	}
	b := make([]byte, 0, n)
	for i, d := range q.Split {
		if i > 0 {
			b = append(b, '/')
		}
		b = append(b, dims[d]...)
	}
	return string(b)
}

// Multiplier is the cost multiplier of an operation (1 when unset).
func (q *Quota) Multiplier(operation string) int64 {
	if m, ok := q.Costs[operation]; ok {
		return m
	}
	return 1
}

// IsSoft reports whether the quota only warns.
func (q *Quota) IsSoft() bool { return q.Enforcement == Soft }
