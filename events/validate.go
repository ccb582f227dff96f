package events

import (
	"fmt"
	"time"
	"unicode/utf8"
)

// MaxAmount bounds every single amount, so that sums of many events cannot
// overflow int64 (2^63 / 2^50 = 8192 maximal events per counter at worst).
const MaxAmount = 1 << 50

// Field limits.
const (
	maxIDLen      = 128
	maxTenantLen  = 64
	maxDims       = 32
	maxDimKeyLen  = 64
	maxDimValLen  = 256
	maxGroups     = 64
	maxLimits     = 32
	maxActions    = 32
	maxCostFactor = 1_000_000
	maxTextLen    = 1024                   // reasons, outcomes, messages
	maxSplitLen   = 8 * (maxDimValLen + 1) // a CounterReset split key: up to 8 values joined by "/"
)

// validToken reports whether s can be one token of a NATS subject and a
// Pebble key part: 1..max bytes of [A-Za-z0-9_-]. NATS cannot carry ".",
// "*", ">" or whitespace in a token; the stricter set keeps keys portable.
func validToken(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// ValidTenant reports whether s can name a tenant (it becomes a subject token).
func ValidTenant(s string) bool { return validToken(s, maxTenantLen) }

// validID accepts printable ASCII without spaces: ids travel as Nats-Msg-Id.
func validID(s string) bool {
	if len(s) == 0 || len(s) > maxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// checkText refuses text that JSON could not carry unchanged (invalid UTF-8)
// or that would corrupt logs (control characters), and bounds its length.
func checkText(field, s string, max int) *Error {
	if !validText(s, max) {
		return invalid(field, "must be printable UTF-8 of at most %d bytes", max)
	}
	return nil
}

// checkTime refuses a missing time or one outside the years an event's own
// time may have, so both encodings carry it exactly.
func checkTime(field string, t time.Time) *Error {
	if t.IsZero() {
		return invalid(field, "missing")
	}
	if y := t.Year(); y < 2000 || y > 2200 {
		return invalid(field, "year %d out of range", y)
	}
	return nil
}

func validText(s string, max int) bool {
	if len(s) > max || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < ' ' || r == 0x7f {
			return false
		}
	}
	return true
}

// Validate checks the event's envelope and payload. It needs no clock; use
// CheckSkew for the time bound.
func (e *Event) Validate() error {
	if err := e.validate(); err != nil {
		return err
	}
	return nil
}

// ValidateCall checks what a quota check asks about (a tenant, dimensions,
// groups and amounts) as Validate checks a usage event that carries them,
// with the same errors, without building the event: a service checks a
// quota for every call it meters.
func ValidateCall(tenant string, dims Dimensions, groups []string, a *Amounts) error {
	if err := validateTenant(tenant); err != nil {
		return err
	}
	if err := validateScope(dims, groups); err != nil {
		return err
	}
	if err := (&UsageRecorded{Amounts: *a}).validate(); err != nil {
		return err
	}
	return nil
}

func validateTenant(tenant string) *Error {
	if tenant == "" {
		return invalid("tenant", "missing")
	}
	if !ValidTenant(tenant) {
		return invalid("tenant", "%q cannot be a subject token: use 1-%d of [A-Za-z0-9_-]", tenant, maxTenantLen)
	}
	return nil
}

func (e *Event) validate() *Error {
	if err := validateTenant(e.Tenant); err != nil {
		return err
	}
	if !validID(e.ID) {
		return invalid("id", "must be 1-%d printable ASCII characters without spaces", maxIDLen)
	}
	if !e.Type.Known() {
		return &Error{Code: CodeUnknownEventType, Message: fmt.Sprintf("unknown event type %q", e.Type), Details: map[string]any{"type": string(e.Type)}}
	}
	if e.Payload == nil || e.Payload.EventType() != e.Type {
		return invalid("data", "payload does not match type %s", e.Type)
	}
	if e.Time.IsZero() {
		return invalid("time", "missing")
	}
	if y := e.Time.Year(); y < 2000 || y > 2200 {
		return invalid("time", "year %d out of range", y)
	}
	if err := validateScope(e.Dims, e.Groups); err != nil {
		return err
	}
	return e.Payload.validate()
}

// validateScope checks an event's or a call's dimensions and groups.
func validateScope(dims Dimensions, groups []string) *Error {
	if len(dims) > maxDims {
		return invalid("dims", "%d dimensions, limit %d", len(dims), maxDims)
	}
	for k, v := range dims {
		if !validToken(k, maxDimKeyLen) {
			return invalid("dims", "name %q: use 1-%d of [A-Za-z0-9_-]", k, maxDimKeyLen)
		}
		if !validText(v, maxDimValLen) {
			return invalid("dims."+k, "must be printable UTF-8 of at most %d bytes", maxDimValLen)
		}
	}
	if len(groups) > maxGroups {
		return invalid("groups", "%d groups, limit %d", len(groups), maxGroups)
	}
	for _, g := range groups {
		if g == "" || !validText(g, maxDimValLen) {
			return invalid("groups", "must be non-empty printable UTF-8 of at most %d bytes", maxDimValLen)
		}
	}
	return nil
}

// CheckSkew refuses an event whose time is more than skew away from now.
// Events are bucketed by their own time, so a late one still lands in its own
// window; a very late or future one would rewrite closed windows.
func CheckSkew(e *Event, now time.Time, skew time.Duration) error {
	d := e.Time.Sub(now)
	if d > skew || d < -skew {
		return &Error{
			Code:    CodeClockSkew,
			Message: fmt.Sprintf("event time %s is %s from the ledger clock, allowed %s", e.Time.UTC().Format(time.RFC3339Nano), d.Round(time.Millisecond), skew),
			Details: map[string]any{"id": e.ID, "time": e.Time.UTC().Format(time.RFC3339Nano), "allowed_skew": skew.String()},
		}
	}
	return nil
}

func checkAmount(field string, v int64, allowNegative bool) *Error {
	if v < 0 && !allowNegative {
		return invalid(field, "must not be negative, got %d", v)
	}
	if v > MaxAmount || v < -MaxAmount {
		return invalid(field, "%d exceeds the maximum amount %d", v, int64(MaxAmount))
	}
	return nil
}

func (a *Amounts) validate(prefix string, allowNegative bool) *Error {
	for _, f := range []struct {
		name string
		v    int64
	}{{"tokens", a.Tokens}, {"input_tokens", a.InputTokens}, {"output_tokens", a.OutputTokens}, {"requests", a.Requests}, {"cost", a.Cost}} {
		if err := checkAmount(prefix+f.name, f.v, allowNegative); err != nil {
			return err
		}
	}
	if err := checkAmount(prefix+"tokens", a.InputTokens+a.OutputTokens, allowNegative); err != nil {
		return err
	}
	if len(a.Actions) > maxActions {
		return invalid(prefix+"actions", "%d actions, limit %d", len(a.Actions), maxActions)
	}
	for name, v := range a.Actions {
		if !validToken(name, 64) {
			return invalid(prefix+"actions", "name %q: use 1-64 of [A-Za-z0-9_-]", name)
		}
		if err := checkAmount(prefix+"actions."+name, v, allowNegative); err != nil {
			return err
		}
	}
	return nil
}

func requireID(field, v string) *Error {
	if !validID(v) {
		return invalid(field, "must be 1-%d printable ASCII characters without spaces", maxIDLen)
	}
	return nil
}

func (p *UsageRecorded) validate() *Error { return p.Amounts.validate("", false) }
func (p *UsageCorrected) validate() *Error {
	if err := requireID("corrects", p.Corrects); err != nil {
		return err
	}
	if err := checkText("reason", p.Reason, maxTextLen); err != nil {
		return err
	}
	return p.Delta.validate("delta.", true)
}
func (p *ReservationCreated) validate() *Error {
	if err := requireID("reservation", p.Reservation); err != nil {
		return err
	}
	if err := checkTime("expires_at", p.ExpiresAt); err != nil {
		return err
	}
	return p.Estimate.validate("estimate.", false)
}
func (p *ReservationReconciled) validate() *Error {
	if err := requireID("reservation", p.Reservation); err != nil {
		return err
	}
	return p.Actual.validate("actual.", false)
}
func (p *ReservationReleased) validate() *Error {
	if err := requireID("reservation", p.Reservation); err != nil {
		return err
	}
	return checkText("reason", p.Reason, maxTextLen)
}
func (p *ReservationExpired) validate() *Error { return requireID("reservation", p.Reservation) }
func (p *RetrySignalled) validate() *Error {
	if err := checkTime("retry_until", p.RetryUntil); err != nil {
		return err
	}
	if err := checkText("retry_delay", p.RetryDelay, 64); err != nil {
		return err
	}
	if err := checkText("quota_metric", p.QuotaMetric, maxDimValLen); err != nil {
		return err
	}
	if err := checkText("quota_id", p.QuotaID, maxDimValLen); err != nil {
		return err
	}
	if len(p.QuotaDimensions) > maxDims {
		return invalid("quota_dimensions", "%d entries, limit %d", len(p.QuotaDimensions), maxDims)
	}
	for k, v := range p.QuotaDimensions {
		if !validText(k, maxDimKeyLen) || !validText(v, maxDimValLen) {
			return invalid("quota_dimensions", "entry %q: names and values must be printable UTF-8 of at most %d and %d bytes", k, maxDimKeyLen, maxDimValLen)
		}
	}
	return nil
}
func (p *RetryCleared) validate() *Error    { return nil }
func (p *WorkflowBegun) validate() *Error   { return requireID("workflow", p.Workflow) }
func (p *WorkflowStepped) validate() *Error { return requireID("workflow", p.Workflow) }
func (p *WorkflowEnded) validate() *Error {
	if err := requireID("workflow", p.Workflow); err != nil {
		return err
	}
	return checkText("outcome", p.Outcome, maxTextLen)
}
func (p *QuotaSet) validate() *Error { return p.Quota.validate() }
func (p *QuotaDeleted) validate() *Error {
	if !validToken(p.Quota, maxIDLen) {
		return invalid("quota", "must be 1-%d of [A-Za-z0-9_-]", maxIDLen)
	}
	return nil
}
func (p *CounterReset) validate() *Error {
	if !validToken(p.Quota, maxIDLen) {
		return invalid("quota", "must be 1-%d of [A-Za-z0-9_-]", maxIDLen)
	}
	if err := checkText("split", p.Split, maxSplitLen); err != nil {
		return err
	}
	return checkText("reason", p.Reason, maxTextLen)
}
func (p *PlanSet) validate() *Error {
	if err := checkText("project", p.Project, maxDimValLen); err != nil {
		return err
	}
	if p.RunTimeoutMs < 0 {
		return invalid("run_timeout_ms", "must not be negative")
	}
	for _, d := range p.RetentionDays {
		if d <= 0 {
			return invalid("retention_days", "must be positive")
		}
	}
	if !validText(p.RetentionMessage, 1024) {
		return invalid("retention_message", "must be printable UTF-8 of at most 1024 bytes")
	}
	return nil
}

// Validate checks a quota definition.
func (q *Quota) Validate() error {
	if err := q.validate(); err != nil {
		return err
	}
	return nil
}

func (q *Quota) validate() *Error {
	if !validToken(q.ID, maxIDLen) {
		return invalid("quota.id", "must be 1-%d of [A-Za-z0-9_-]", maxIDLen)
	}
	if len(q.Limits) == 0 && q.MaxSteps == 0 {
		return invalid("quota.limits", "at least one limit is needed")
	}
	if len(q.Limits) > maxLimits {
		return invalid("quota.limits", "%d limits, limit %d", len(q.Limits), maxLimits)
	}
	if len(q.Scope) > maxDims {
		return invalid("quota.scope", "%d entries, limit %d", len(q.Scope), maxDims)
	}
	for k, v := range q.Scope {
		if !validToken(k, maxDimKeyLen) || !validText(v, maxDimValLen) {
			return invalid("quota.scope", "bad entry %q", k)
		}
	}
	if len(q.Split) > 8 {
		return invalid("quota.split", "%d dimensions, limit 8", len(q.Split))
	}
	for _, d := range q.Split {
		if !validToken(d, maxDimKeyLen) {
			return invalid("quota.split", "bad dimension %q", d)
		}
	}
	for i, l := range q.Limits {
		f := fmt.Sprintf("quota.limits[%d]", i)
		if !l.Metric.Valid() || l.Metric == MetricSteps {
			return invalid(f+".metric", "unknown metric %q", l.Metric)
		}
		if err := checkAmount(f+".max", l.Max, false); err != nil {
			return err
		}
		if l.Metric == MetricConcurrent && l.Window == (Window{}) {
			continue // permits are held until settled: no window
		}
		if err := l.Window.validate(f + ".window"); err != nil {
			return err
		}
	}
	for op, m := range q.Costs {
		if !validToken(op, maxDimKeyLen) || m < 0 || m > maxCostFactor {
			return invalid("quota.costs", "operation %q: multiplier must be 0-%d", op, maxCostFactor)
		}
	}
	if q.WarnPercent < 0 || q.WarnPercent > 100 {
		return invalid("quota.warn_percent", "must be 0-100")
	}
	switch q.Enforcement {
	case "", Hard, Soft:
	default:
		return invalid("quota.enforcement", "must be hard or soft")
	}
	if q.MaxSteps < 0 || q.MaxSteps > MaxAmount {
		return invalid("quota.max_steps", "out of range")
	}
	return nil
}

// Length is the duration of a sliding or rolling window.
func (w Window) Length() time.Duration {
	if w.Seconds > 0 {
		return time.Duration(w.Seconds) * time.Second
	}
	switch w.Unit {
	case UnitHour:
		return time.Hour
	case UnitDay:
		return 24 * time.Hour
	case UnitWeek:
		return 7 * 24 * time.Hour
	}
	return 0
}

// Location is the window's time zone (UTC when unset or unknown).
func (w Window) Location() *time.Location {
	loc, err := LoadZone(w.TZ) // cached: the fold and every check ask
	if err != nil {
		return time.UTC
	}
	return loc
}

func (w Window) validate(field string) *Error {
	switch w.Kind {
	case Sliding, Rolling:
		if w.Seconds < 0 || w.Seconds > 366*24*3600 {
			return invalid(field+".seconds", "must be 1 s to 366 days")
		}
		switch w.Unit {
		case "", UnitHour, UnitDay, UnitWeek:
		default:
			return invalid(field+".unit", "%s window unit must be hour, day or week", w.Kind)
		}
		if w.Seconds == 0 && w.Unit == "" {
			return invalid(field, "%s window needs seconds or unit hour, day or week", w.Kind)
		}
	case Calendar:
		switch w.Unit {
		case UnitHour, UnitDay, UnitWeek, UnitMonth:
		default:
			return invalid(field+".unit", "calendar unit must be hour, day, week or month")
		}
		if w.Seconds != 0 {
			return invalid(field+".seconds", "calendar windows take a unit, not seconds")
		}
	default:
		return invalid(field+".kind", "must be sliding, calendar or rolling")
	}
	if w.TZ != "" {
		if _, err := LoadZone(w.TZ); err != nil {
			return invalid(field+".tz", "unknown time zone %q", w.TZ)
		}
	}
	return nil
}
