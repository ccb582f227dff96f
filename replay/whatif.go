package replay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/ledger"
	"github.com/ledgerworks/ledger/projections"
)

// Proposal is a proposed set of quotas per tenant: the quotas that would
// have been in force instead of those the stream records.
type Proposal map[string][]events.Quota

// ReadProposal reads a proposal as JSON ({"tenant": [quota, ...], ...}) and
// validates every quota as quota.set would.
func ReadProposal(r io.Reader) (Proposal, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var p Proposal
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("proposal: %w", err)
	}
	return p, p.Validate()
}

// Validate checks every tenant name and quota.
func (p Proposal) Validate() error {
	if len(p) == 0 {
		return errors.New("proposal: no tenants")
	}
	for tenant, qs := range p {
		if !events.ValidTenant(tenant) {
			return fmt.Errorf("proposal: tenant %q", tenant)
		}
		ids := map[string]bool{}
		for i, q := range qs {
			ev := events.New("proposal", tenant, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), nil, &events.QuotaSet{Quota: q}) // any valid time: only the quota is checked
			if err := ev.Validate(); err != nil {
				return fmt.Errorf("proposal: tenant %s quota %d (%s): %w", tenant, i, q.ID, err)
			}
			if ids[q.ID] {
				return fmt.Errorf("proposal: tenant %s has quota %s twice", tenant, q.ID)
			}
			ids[q.ID] = true
		}
	}
	return nil
}

// WhatIfOptions configure a what-if replay.
type WhatIfOptions struct {
	// From and To bound the period judged: events whose own time t has
	// From <= t < To. Earlier events are folded (they fill the windows)
	// but not judged.
	From, To time.Time
	// Location is the zone times are written in (default UTC).
	Location *time.Location
	// Through is the last sequence read (0: the stream's last at start).
	Through uint64
	// CountDenied keeps folding calls the proposal denies, as if they had
	// run anyway. By default a denied call does not happen: its usage, its
	// reservation (and so its reconciliation) and its workflow (and so its
	// steps) are left out of the windows that judge later calls.
	CountDenied bool
	Progress    *Progress
}

// What-if modes, as written in the report.
const (
	ModeDeniedDoNotHappen = "denied calls do not happen"
	ModeDeniedStillCount  = "denied calls still count"
)

// Hit is one limit of a quota that denies a call.
type Hit struct {
	Metric    events.Metric `json:"metric"`
	Window    events.Window `json:"window"`
	Max       int64         `json:"max"`
	Used      int64         `json:"used"`
	Reserved  int64         `json:"reserved"`
	Requested int64         `json:"requested"`
}

// Denial is a call the proposal would have denied.
type Denial struct {
	Seq   uint64      `json:"seq"`
	Index int         `json:"index"` // position of the event in its message
	ID    string      `json:"id"`
	Type  events.Type `json:"type"`
	Time  string      `json:"time"`
	Split string      `json:"split,omitempty"`
	// Subject is the reservation or workflow the event is about.
	Subject string `json:"subject,omitempty"`
	Hits    []Hit  `json:"limits"`
}

// Crossing is an account (a split of a quota) whose limit went past the
// quota's warning threshold during the period.
type Crossing struct {
	Split       string        `json:"split,omitempty"`
	Metric      events.Metric `json:"metric"`
	Window      events.Window `json:"window"`
	Max         int64         `json:"max"`
	WarnPercent int64         `json:"warn_percent"`
	// First is when it first crossed, by which event.
	First    string `json:"first"`
	FirstID  string `json:"first_id"`
	FirstSeq uint64 `json:"first_seq"`
	// Times counts the events that took it past the threshold (once per
	// window, unless usage went back down within one).
	Times int `json:"times"`
}

// QuotaOutcome is what one proposed quota would have done.
type QuotaOutcome struct {
	Tenant             string     `json:"tenant"`
	Quota              string     `json:"quota"`
	Enforcement        string     `json:"enforcement"`
	DeniedCalls        int        `json:"denied_calls"`
	DeniedReservations int        `json:"denied_reservations"`
	DeniedWorkflows    int        `json:"denied_workflows"`
	DeniedSteps        int        `json:"denied_steps"`
	Denials            []Denial   `json:"denials"`
	Warnings           []Crossing `json:"warnings"`
}

// WhatIfReport is the outcome of a what-if replay.
type WhatIfReport struct {
	Period Period         `json:"period"`
	Stream StreamRead     `json:"stream"`
	Mode   string         `json:"mode"`
	Quotas []QuotaOutcome `json:"quotas"`
}

// WhatIfRule states how calls are judged.
const WhatIfRule = "events whose own time t has from <= t < to are judged at t against the proposed quotas, which replace every recorded quota.set and quota.deleted of the tenant from the start of the stream, by the ledger's own rule (ledger.Refuses): usage recorded as a consume of its amounts, a reservation created as a reserve of its estimate (taking a permit), a workflow begun as one more workflow, a workflow step once the workflow has used the smallest max_steps of its quotas. Warnings: a limit whose used+reserved reached the quota's warn_percent because of an event of the period"

type whatIfTenant struct {
	t        *projections.Tenant
	outcomes map[string]*QuotaOutcome
	crossed  map[string]*Crossing
	denied   map[string]bool // IDs of denied events (their corrections are left out too)
}

// WhatIf replays the stream with the proposed quotas in force instead of
// the recorded ones and reports, per proposed quota, which calls,
// reservations, workflows and steps of the period it would have denied and
// which accounts would have crossed their warning thresholds. Denials are
// decided with projections.Statuses over a fold (projections.Evolve, in
// memory) of every event of the proposal's tenants.
func WhatIf(ctx context.Context, src Source, prop Proposal, o WhatIfOptions) (*WhatIfReport, error) {
	if err := prop.Validate(); err != nil {
		return nil, err
	}
	if o.From.IsZero() || o.To.IsZero() || !o.From.Before(o.To) {
		return nil, errors.New("what-if: a period needs a start before its end")
	}
	loc := o.Location
	if loc == nil {
		loc = time.UTC
	}
	rep := &WhatIfReport{
		Period: Period{From: o.From.In(loc).Format(time.RFC3339Nano), To: o.To.In(loc).Format(time.RFC3339Nano),
			TimeZone: loc.String(), Seconds: int64(o.To.Sub(o.From) / time.Second), Rule: WhatIfRule},
		Mode: ModeDeniedDoNotHappen, Quotas: []QuotaOutcome{},
	}
	if o.CountDenied {
		rep.Mode = ModeDeniedStillCount
	}
	counters := newMemCounters()
	tenants := map[string]*whatIfTenant{}
	for name, qs := range prop {
		wt := &whatIfTenant{t: projections.NewTenant(name), outcomes: map[string]*QuotaOutcome{}, crossed: map[string]*Crossing{}, denied: map[string]bool{}}
		sorted := append([]events.Quota{}, qs...)
		sort.Slice(sorted, func(i, j int) bool { return sorted[i].ID < sorted[j].ID })
		for _, q := range sorted {
			ev := events.New("proposal-"+q.ID, name, o.From, nil, &events.QuotaSet{Quota: q})
			d := projections.NewDeltas()
			projections.Evolve(wt.t, &ev, projections.Meta{}, d)
			enf := string(events.Hard)
			if q.IsSoft() {
				enf = string(events.Soft)
			}
			wt.outcomes[q.ID] = &QuotaOutcome{Tenant: name, Quota: q.ID, Enforcement: enf, Denials: []Denial{}, Warnings: []Crossing{}}
		}
		tenants[name] = wt
	}
	inPeriod := func(t time.Time) bool { return !t.Before(o.From) && t.Before(o.To) }
	sc := NewScanner()
	through, err := readShowing(ctx, src, Range{From: 1, To: o.Through}, o.Progress, func(batch []Message) error {
		for i := range batch {
			sc.Scan(&batch[i], func(r *Record) {
				if r.Status != Accepted {
					return
				}
				wt := tenants[r.Event.Tenant]
				if wt == nil {
					return
				}
				wt.step(r, counters, inPeriod(r.Event.Time), o.CountDenied, loc)
			})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	rep.Stream = streamRead(sc, 1, through)
	names := sortedKeys(tenants)
	for _, name := range names {
		wt := tenants[name]
		for _, k := range sortedKeys(wt.crossed) {
			c := wt.crossed[k]
			q := k[:strings.IndexByte(k, 0)]
			wt.outcomes[q].Warnings = append(wt.outcomes[q].Warnings, *c)
		}
		for _, id := range sortedKeys(wt.outcomes) {
			rep.Quotas = append(rep.Quotas, *wt.outcomes[id])
		}
	}
	return rep, nil
}

// step judges (when in the period) and folds one accepted event.
func (wt *whatIfTenant) step(r *Record, counters *memCounters, judge, countDenied bool, loc *time.Location) {
	ev := &r.Event
	switch p := ev.Payload.(type) {
	case *events.QuotaSet, *events.QuotaDeleted:
		return // the proposal replaces the recorded quotas
	case *events.UsageCorrected:
		if wt.denied[p.Corrects] && !countDenied {
			return
		}
	}
	var call *projections.Call
	kind := ""
	subject := ""
	switch p := ev.Payload.(type) {
	case *events.UsageRecorded:
		call, kind = &projections.Call{Dims: ev.Dims, Groups: ev.Groups, Request: p.Amounts}, "call"
	case *events.UsageCorrected:
		call = &projections.Call{Dims: ev.Dims, Groups: ev.Groups}
	case *events.ReservationCreated:
		if _, open := wt.t.Reservations[p.Reservation]; !open {
			call, kind, subject = &projections.Call{Dims: ev.Dims, Groups: ev.Groups, Request: p.Estimate, Permit: true}, "reservation", p.Reservation
		}
	case *events.ReservationReconciled:
		if res, open := wt.t.Reservations[p.Reservation]; open {
			call = &projections.Call{Dims: res.Dims, Groups: res.Groups}
		}
	case *events.WorkflowBegun:
		call, kind, subject = &projections.Call{Dims: ev.Dims, Groups: ev.Groups, Workflows: 1}, "workflow", p.Workflow
	case *events.WorkflowStepped:
		if w := wt.t.Workflows[p.Workflow]; w != nil && judge {
			if wt.judgeStep(r, w, p, loc) && !countDenied {
				return
			}
		}
	}
	var before []projections.LimitStatus
	if call != nil && judge {
		before = projections.Statuses(wt.t, counters, *call, ev.Time)
		if kind != "" && wt.judge(r, kind, subject, before, loc) && !countDenied {
			wt.denied[ev.ID] = true
			return
		}
	}
	d := projections.NewDeltas()
	projections.Evolve(wt.t, ev, r.Meta(), d)
	for k, n := range d.Counters {
		counters.add(k, n)
	}
	if before == nil {
		return
	}
	after := projections.Statuses(wt.t, counters, projections.Call{Dims: call.Dims, Groups: call.Groups}, ev.Time)
	was := map[string]bool{}
	for i := range before {
		was[statusKey(&before[i])] = before[i].Warning
	}
	for i := range after {
		st := &after[i]
		k := statusKey(st)
		if !st.Warning || was[k] {
			continue
		}
		c := wt.crossed[k]
		if c == nil {
			q := wt.t.Quotas[st.Quota]
			warn := q.Quota.WarnPercent
			if warn == 0 {
				warn = 80
			}
			c = &Crossing{Split: st.Split, Metric: st.Limit.Metric, Window: st.Limit.Window, Max: st.Limit.Max, WarnPercent: warn,
				First: ev.Time.In(loc).Format(time.RFC3339Nano), FirstID: ev.ID, FirstSeq: r.Seq}
			wt.crossed[k] = c
		}
		c.Times++
	}
}

func statusKey(st *projections.LimitStatus) string {
	return st.Quota + "\x00" + st.Split + "\x00" + string(st.Limit.Metric) + "\x00" + string(st.Limit.Window.Kind) + "\x00" + st.Limit.Window.Unit + "\x00" + strconv.FormatInt(st.Limit.Window.Seconds, 10) + "\x00" + st.Limit.Window.TZ
}

// judge records a denial under every quota with a limit that refuses the
// call, by the rule the ledger's own decisions use (ledger.Refuses: an
// exceeded hard limit; a full workflows or named-action limit refuses only
// a call that would add to it).
func (wt *whatIfTenant) judge(r *Record, kind, subject string, sts []projections.LimitStatus, loc *time.Location) bool {
	hits := map[string][]Hit{}
	split := map[string]string{}
	for i := range sts {
		st := &sts[i]
		if !ledger.Refuses(st) {
			continue
		}
		hits[st.Quota] = append(hits[st.Quota], Hit{Metric: st.Limit.Metric, Window: st.Limit.Window, Max: st.Limit.Max,
			Used: st.Used, Reserved: st.Reserved, Requested: st.Requested})
		split[st.Quota] = st.Split
	}
	for q, hs := range hits {
		out := wt.outcomes[q]
		out.Denials = append(out.Denials, Denial{Seq: r.Seq, Index: r.Index, ID: r.Event.ID, Type: r.Event.Type,
			Time: r.Event.Time.In(loc).Format(time.RFC3339Nano), Split: split[q], Subject: subject, Hits: hs})
		switch kind {
		case "call":
			out.DeniedCalls++
		case "reservation":
			out.DeniedReservations++
		case "workflow":
			out.DeniedWorkflows++
		}
	}
	return len(hits) > 0
}

// judgeStep denies a step once the workflow has used the smallest
// max_steps of the quotas matching it, as the ledger's step decision does,
// under each quota with that max_steps.
func (wt *whatIfTenant) judgeStep(r *Record, w *projections.Workflow, p *events.WorkflowStepped, loc *time.Location) bool {
	var limit int64
	for _, id := range wt.t.QuotaIDs() {
		q := &wt.t.Quotas[id].Quota
		if q.MaxSteps > 0 && q.Matches(w.Dims, w.Groups) && (limit == 0 || q.MaxSteps < limit) {
			limit = q.MaxSteps
		}
	}
	if limit == 0 || w.Steps < limit {
		return false
	}
	denied := false
	for _, id := range wt.t.QuotaIDs() {
		q := &wt.t.Quotas[id].Quota
		if q.MaxSteps == limit && q.Matches(w.Dims, w.Groups) {
			out := wt.outcomes[id]
			out.Denials = append(out.Denials, Denial{Seq: r.Seq, Index: r.Index, ID: r.Event.ID, Type: r.Event.Type,
				Time: r.Event.Time.In(loc).Format(time.RFC3339Nano), Split: q.SplitKey(w.Dims), Subject: p.Workflow,
				Hits: []Hit{{Metric: events.MetricSteps, Max: q.MaxSteps, Used: w.Steps, Requested: 1}}})
			out.DeniedSteps++
			denied = true
		}
	}
	return denied
}

// WriteJSON writes the report as indented JSON.
func (r *WhatIfReport) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
}

// WriteText writes the report for a reader: per quota, its denials and
// warnings.
func (r *WhatIfReport) WriteText(w io.Writer) error {
	p := r.Period
	fmt.Fprintf(w, "what-if over [%s, %s) in %s (%d s), %s\n", p.From, p.To, p.TimeZone, p.Seconds, r.Mode)
	s := r.Stream
	fmt.Fprintf(w, "stream sequences %d-%d: %d messages, %d events, chained sha256 %s\n", s.FromSeq, s.ThroughSeq, s.Messages, s.Events, s.ChainedSHA256)
	for _, q := range r.Quotas {
		fmt.Fprintf(w, "\ntenant %s quota %s (%s): %d calls, %d reservations, %d workflows, %d steps denied; %d accounts crossed a warning threshold\n",
			q.Tenant, q.Quota, q.Enforcement, q.DeniedCalls, q.DeniedReservations, q.DeniedWorkflows, q.DeniedSteps, len(q.Warnings))
		for _, d := range q.Denials {
			var hs []string
			for _, h := range d.Hits {
				hs = append(hs, fmt.Sprintf("%s %d+%d+%d>%d", h.Metric, h.Used, h.Reserved, h.Requested, h.Max))
			}
			subj := ""
			if d.Subject != "" {
				subj = " " + d.Subject
			}
			fmt.Fprintf(w, "  denied seq %d %s %s%s at %s split %q: %s\n", d.Seq, d.Type, d.ID, subj, d.Time, d.Split, strings.Join(hs, ", "))
		}
		for _, c := range q.Warnings {
			fmt.Fprintf(w, "  warning split %q %s (max %d, %d%%): first at %s by %s (seq %d), %d times\n", c.Split, c.Metric, c.Max, c.WarnPercent, c.First, c.FirstID, c.FirstSeq, c.Times)
		}
	}
	return nil
}

// memCounters are windowed counters in memory (projections.Counters), for
// folds that judge every event and need no Pebble.
type memCounters struct {
	series map[projections.CounterKey]*series // keys without bucket and side
}

type series struct {
	buckets        []int64 // sorted
	used, reserved []int64
}

func newMemCounters() *memCounters {
	return &memCounters{series: map[projections.CounterKey]*series{}}
}

func (m *memCounters) add(k projections.CounterKey, n int64) {
	b, res := k.Bucket, k.Reserved
	k.Bucket, k.Reserved = 0, false
	s := m.series[k]
	if s == nil {
		s = &series{}
		m.series[k] = s
	}
	i := sort.Search(len(s.buckets), func(i int) bool { return s.buckets[i] >= b })
	if i == len(s.buckets) || s.buckets[i] != b {
		s.buckets = append(s.buckets, 0)
		s.used = append(s.used, 0)
		s.reserved = append(s.reserved, 0)
		copy(s.buckets[i+1:], s.buckets[i:])
		copy(s.used[i+1:], s.used[i:])
		copy(s.reserved[i+1:], s.reserved[i:])
		s.buckets[i], s.used[i], s.reserved[i] = b, 0, 0
	}
	if res {
		s.reserved[i] += n
	} else {
		s.used[i] += n
	}
}

// Sum implements projections.Counters as Store.Sum does.
func (m *memCounters) Sum(k projections.CounterKey, from, to int64) (used, reserved, oldest int64) {
	k.Bucket, k.Reserved = 0, false
	s := m.series[k]
	if s == nil {
		return 0, 0, 0
	}
	for i := sort.Search(len(s.buckets), func(i int) bool { return s.buckets[i] >= from }); i < len(s.buckets) && s.buckets[i] <= to; i++ {
		if (s.used[i] != 0 || s.reserved[i] != 0) && oldest == 0 {
			oldest = s.buckets[i]
		}
		used += s.used[i]
		reserved += s.reserved[i]
	}
	return used, reserved, oldest
}
