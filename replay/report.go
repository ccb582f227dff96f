package replay

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ledgerworks/ledger/events"
)

// Group-by keys that are not dimensions: the tenant, and calendar periods in
// the report's time zone.
const (
	GroupTenant = "tenant"
	GroupHour   = "hour"
	GroupDay    = "day"
	GroupWeek   = "week" // from Monday
	GroupMonth  = "month"
)

// ReportOptions say what to bill.
type ReportOptions struct {
	// From and To bound the period: events whose own time t has
	// From <= t < To.
	From, To time.Time
	// Location is the time zone the report is written in and calendar
	// groups are cut in (default UTC).
	Location *time.Location
	// GroupBy lists the grouping keys: tenant, hour, day, week, month, or
	// any dimension name (user, model, project, ...). Default: tenant.
	GroupBy []string
	// Through is the last stream sequence read (0: the stream's last when
	// the report starts). Every event up to it is read, from sequence 1,
	// because deduplication and open reservations depend on all history.
	Through  uint64
	Progress *Progress
}

// Validate checks the options.
func (o *ReportOptions) Validate() error {
	if o.From.IsZero() || o.To.IsZero() {
		return errors.New("report: a period needs both ends")
	}
	if !o.From.Before(o.To) {
		return fmt.Errorf("report: period end %s is not after its start %s", o.To.Format(time.RFC3339), o.From.Format(time.RFC3339))
	}
	seen := map[string]bool{}
	for _, g := range o.GroupBy {
		if g == "" || strings.ContainsAny(g, " ,") {
			return fmt.Errorf("report: group-by key %q", g)
		}
		if g == events.DimGroup {
			return errors.New("report: cannot group by group: an event may belong to several groups, so totals would not add up")
		}
		if seen[g] {
			return fmt.Errorf("report: group-by key %q given twice", g)
		}
		seen[g] = true
	}
	return nil
}

// Amounts are a row's totals. Tokens are events.Amounts.TotalTokens (given
// tokens, else input + output); cost is in micro-units.
type Amounts struct {
	Tokens       int64         `json:"tokens"`
	InputTokens  int64         `json:"input_tokens"`
	OutputTokens int64         `json:"output_tokens"`
	Requests     int64         `json:"requests"`
	Cost         int64         `json:"cost"`
	Actions      events.Counts `json:"actions,omitempty"`
}

func (a *Amounts) add(x *events.Amounts) {
	a.Tokens += x.TotalTokens()
	a.InputTokens += x.InputTokens
	a.OutputTokens += x.OutputTokens
	a.Requests += x.Requests
	a.Cost += x.Cost
	for k, n := range x.Actions {
		if a.Actions == nil {
			a.Actions = events.Counts{}
		}
		a.Actions[k] += n
	}
}

func (a *Amounts) merge(x *Amounts) {
	a.Tokens += x.Tokens
	a.InputTokens += x.InputTokens
	a.OutputTokens += x.OutputTokens
	a.Requests += x.Requests
	a.Cost += x.Cost
	for k, n := range x.Actions {
		if a.Actions == nil {
			a.Actions = events.Counts{}
		}
		a.Actions[k] += n
	}
}

// Row is one group's totals.
type Row struct {
	Group map[string]string `json:"group,omitempty"`
	// Events counted: usage recorded, corrections and reconciliations.
	Events      int64 `json:"events"`
	Corrections int64 `json:"corrections"`
	Reconciled  int64 `json:"reconciled"`
	Amounts

	key []sortKey
}

// OpenReservation is a reservation created before the period's end and not
// reconciled, released or expired by then.
type OpenReservation struct {
	Tenant      string            `json:"tenant"`
	Reservation string            `json:"reservation"`
	ID          string            `json:"id"`  // the reservation.created event
	Seq         uint64            `json:"seq"` // its stream sequence
	Created     string            `json:"created"`
	ExpiresAt   string            `json:"expires_at"`
	Dims        events.Dimensions `json:"dims,omitempty"`
	Estimate    Amounts           `json:"estimate"`
	// Settled says how and when it ended after the period, if it did by
	// the end of the read.
	Settled string `json:"settled,omitempty"`
}

// Period is the billed period, written in the report's zone.
type Period struct {
	From     string `json:"from"`
	To       string `json:"to"`
	TimeZone string `json:"time_zone"`
	Seconds  int64  `json:"seconds"`
	Rule     string `json:"rule"`
}

// StreamRead says what part of the stream a result was computed from.
type StreamRead struct {
	FromSeq    uint64 `json:"from_seq"`
	ThroughSeq uint64 `json:"through_seq"`
	Messages   int64  `json:"messages"`
	Events     int64  `json:"events"`
	Accepted   int64  `json:"accepted"`
	Duplicates int64  `json:"duplicates"`
	Rejected   int64  `json:"rejected"`
	Refused    int    `json:"refused_messages"`
	// ChainedSHA256 is the chained content hash of the events read (see Chain).
	ChainedSHA256 string `json:"chained_sha256"`
}

func streamRead(s *Scanner, from, through uint64) StreamRead {
	return StreamRead{
		FromSeq: from, ThroughSeq: through, Messages: s.Messages, Events: s.Events,
		Accepted: s.Accepted, Duplicates: s.Duplicates, Rejected: s.Rejected, Refused: len(s.Refused),
		ChainedSHA256: s.Chain().Sum(),
	}
}

// Report is the billing report of a period.
type Report struct {
	Period  Period            `json:"period"`
	Stream  StreamRead        `json:"stream"`
	GroupBy []string          `json:"group_by"`
	Actions []string          `json:"actions"` // every action name, sorted
	Rows    []Row             `json:"rows"`
	Total   Row               `json:"total"`
	Open    []OpenReservation `json:"open_reservations"`

	loc *time.Location
}

// ReportRule states what a report counts.
const ReportRule = "events whose own time t has from <= t < to: usage recorded, usage corrected, and reservation reconciliations (their actual usage, at the reconciliation's time, grouped by the reservation's dimensions); each (tenant, id) counted once, the first in stream order, as the projector does"

type sortKey struct {
	s string
	t int64
}

type openRes struct {
	tenant, id string
	seq        uint64
	created    events.Event
	p          *events.ReservationCreated
}

// BuildReport reads the stream from sequence 1 and bills the period.
func BuildReport(ctx context.Context, src Source, o ReportOptions) (*Report, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	loc := o.Location
	if loc == nil {
		loc = time.UTC
	}
	groupBy := o.GroupBy
	if len(groupBy) == 0 {
		groupBy = []string{GroupTenant}
	}
	rep := &Report{
		Period: Period{
			From: o.From.In(loc).Format(time.RFC3339Nano), To: o.To.In(loc).Format(time.RFC3339Nano),
			TimeZone: loc.String(), Seconds: int64(o.To.Sub(o.From) / time.Second), Rule: ReportRule,
		},
		GroupBy: groupBy, Actions: []string{}, Rows: []Row{}, Open: []OpenReservation{}, loc: loc,
	}
	rows := map[string]*Row{}
	inPeriod := func(t time.Time) bool { return !t.Before(o.From) && t.Before(o.To) }
	row := func(tenant string, dims events.Dimensions, at time.Time) *Row {
		vals := make([]string, len(groupBy))
		keys := make([]sortKey, len(groupBy))
		for i, g := range groupBy {
			switch g {
			case GroupTenant:
				vals[i] = tenant
				keys[i] = sortKey{s: tenant}
			case GroupHour, GroupDay, GroupWeek, GroupMonth:
				st := calendarStart(g, at.In(loc))
				vals[i] = st.Format(time.RFC3339)
				keys[i] = sortKey{t: st.Unix()}
			default:
				vals[i] = dims[g]
				keys[i] = sortKey{s: dims[g]}
			}
		}
		k := strings.Join(vals, "\x00")
		r := rows[k]
		if r == nil {
			r = &Row{Group: map[string]string{}, key: keys}
			for i, g := range groupBy {
				r.Group[g] = vals[i]
			}
			rows[k] = r
		}
		return r
	}
	open := map[string]*openRes{}
	var openAtEnd []*openRes
	settled := map[*openRes]string{}
	sc := NewScanner()
	through, err := readShowing(ctx, src, Range{From: 1, To: o.Through}, o.Progress, func(batch []Message) error {
		for i := range batch {
			sc.Scan(&batch[i], func(r *Record) {
				if r.Status != Accepted {
					return
				}
				ev := &r.Event
				switch p := ev.Payload.(type) {
				case *events.UsageRecorded:
					if inPeriod(ev.Time) {
						rw := row(ev.Tenant, ev.Dims, ev.Time)
						rw.Events++
						rw.add(&p.Amounts)
					}
				case *events.UsageCorrected:
					if inPeriod(ev.Time) {
						rw := row(ev.Tenant, ev.Dims, ev.Time)
						rw.Events++
						rw.Corrections++
						rw.add(&p.Delta)
					}
				case *events.ReservationCreated:
					k := ev.Tenant + "\x00" + p.Reservation
					if _, dup := open[k]; !dup { // the projector ignores a second creation while open
						open[k] = &openRes{tenant: ev.Tenant, id: p.Reservation, seq: r.Seq, created: *ev, p: p}
					}
				case *events.ReservationReconciled, *events.ReservationReleased, *events.ReservationExpired:
					var id, how string
					var actual *events.Amounts
					switch p := p.(type) {
					case *events.ReservationReconciled:
						id, how, actual = p.Reservation, "reconciled", &p.Actual
					case *events.ReservationReleased:
						id, how = p.Reservation, "released"
					case *events.ReservationExpired:
						id, how = p.Reservation, "expired"
					}
					k := ev.Tenant + "\x00" + id
					res, ok := open[k]
					if !ok { // unknown or already settled: the projector changes nothing
						return
					}
					delete(open, k)
					if actual != nil && inPeriod(ev.Time) {
						rw := row(ev.Tenant, res.created.Dims, ev.Time)
						rw.Events++
						rw.Reconciled++
						rw.add(actual)
					}
					if res.created.Time.Before(o.To) && !ev.Time.Before(o.To) {
						openAtEnd = append(openAtEnd, res)
						settled[res] = fmt.Sprintf("%s at %s (seq %d)", how, ev.Time.In(loc).Format(time.RFC3339Nano), r.Seq)
					}
				}
			})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, res := range open {
		if res.created.Time.Before(o.To) {
			openAtEnd = append(openAtEnd, res)
		}
	}
	rep.Stream = streamRead(sc, 1, through)

	actions := map[string]bool{}
	for _, r := range rows {
		rep.Rows = append(rep.Rows, *r)
		rep.Total.Events += r.Events
		rep.Total.Corrections += r.Corrections
		rep.Total.Reconciled += r.Reconciled
		rep.Total.merge(&r.Amounts)
		for a := range r.Actions {
			actions[a] = true
		}
	}
	for a := range actions {
		rep.Actions = append(rep.Actions, a)
	}
	sort.Strings(rep.Actions)
	sort.Slice(rep.Rows, func(i, j int) bool { return lessKeys(rep.Rows[i].key, rep.Rows[j].key) })

	sort.Slice(openAtEnd, func(i, j int) bool {
		a, b := openAtEnd[i], openAtEnd[j]
		if a.tenant != b.tenant {
			return a.tenant < b.tenant
		}
		if a.id != b.id {
			return a.id < b.id
		}
		return a.seq < b.seq
	})
	for _, res := range openAtEnd {
		or := OpenReservation{
			Tenant: res.tenant, Reservation: res.id, ID: res.created.ID, Seq: res.seq,
			Created:   res.created.Time.In(loc).Format(time.RFC3339Nano),
			ExpiresAt: res.p.ExpiresAt.In(loc).Format(time.RFC3339Nano),
			Dims:      res.created.Dims, Settled: settled[res],
		}
		or.Estimate.add(&res.p.Estimate)
		rep.Open = append(rep.Open, or)
	}
	return rep, nil
}

func lessKeys(a, b []sortKey) bool {
	for i := range a {
		if a[i].t != b[i].t {
			return a[i].t < b[i].t
		}
		if a[i].s != b[i].s {
			return a[i].s < b[i].s
		}
	}
	return false
}

// calendarStart is the start of the hour, day, week (from Monday) or month
// holding t, in t's location. Days start at local midnight, so a day across
// a DST change lasts 23 or 25 hours.
func calendarStart(unit string, t time.Time) time.Time {
	y, m, d := t.Date()
	switch unit {
	case GroupHour:
		// Hours are cut in absolute time at the zone's offset, so the
		// repeated hour at the end of DST is two hours, each labelled with
		// its own offset.
		_, off := t.Zone()
		sec := t.Unix() + int64(off)
		sec -= ((sec % 3600) + 3600) % 3600
		return time.Unix(sec-int64(off), 0).In(t.Location())
	case GroupDay:
		return time.Date(y, m, d, 0, 0, 0, 0, t.Location())
	case GroupWeek:
		wd := (int(t.Weekday()) + 6) % 7
		return time.Date(y, m, d-wd, 0, 0, 0, 0, t.Location())
	}
	return time.Date(y, m, 1, 0, 0, 0, 0, t.Location())
}

// WriteJSON writes the report as indented JSON (map keys sorted).
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
}

// WriteCSV writes the report as CSV: comment lines (starting with #) that
// state the period, its time zone and the stream range; the table of groups
// ending with a total row; a blank line; then the reservations open at the
// end of the period.
func (r *Report) WriteCSV(w io.Writer) error {
	p := r.Period
	fmt.Fprintf(w, "# ledger usage report\n")
	fmt.Fprintf(w, "# period_from: %s (inclusive)\n", p.From)
	fmt.Fprintf(w, "# period_to: %s (exclusive)\n", p.To)
	fmt.Fprintf(w, "# time_zone: %s\n", p.TimeZone)
	fmt.Fprintf(w, "# period_seconds: %d\n", p.Seconds)
	fmt.Fprintf(w, "# rule: %s\n", p.Rule)
	s := r.Stream
	fmt.Fprintf(w, "# stream: sequences %d-%d, %d messages, %d events (accepted %d, duplicates %d, rejected %d), refused messages %d\n",
		s.FromSeq, s.ThroughSeq, s.Messages, s.Events, s.Accepted, s.Duplicates, s.Rejected, s.Refused)
	fmt.Fprintf(w, "# chained_sha256: %s\n", s.ChainedSHA256)
	fmt.Fprintf(w, "# amounts: integers; cost in micro-units\n")
	cw := csv.NewWriter(w)
	head := append([]string{"row"}, r.GroupBy...)
	head = append(head, "events", "corrections", "reconciled", "tokens", "input_tokens", "output_tokens", "requests", "cost")
	for _, a := range r.Actions {
		head = append(head, string(events.ActionMetric(a)))
	}
	if err := cw.Write(head); err != nil {
		return err
	}
	line := func(kind string, row *Row) error {
		rec := []string{kind}
		for _, g := range r.GroupBy {
			rec = append(rec, row.Group[g])
		}
		for _, n := range []int64{row.Events, row.Corrections, row.Reconciled, row.Tokens, row.InputTokens, row.OutputTokens, row.Requests, row.Cost} {
			rec = append(rec, strconv.FormatInt(n, 10))
		}
		for _, a := range r.Actions {
			rec = append(rec, strconv.FormatInt(row.Actions[a], 10))
		}
		return cw.Write(rec)
	}
	for i := range r.Rows {
		if err := line("group", &r.Rows[i]); err != nil {
			return err
		}
	}
	if err := line("total", &r.Total); err != nil {
		return err
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n# reservations open at %s: %d\n", p.To, len(r.Open))
	if err := cw.Write([]string{"tenant", "reservation", "id", "seq", "created", "expires_at", "dims", "tokens", "input_tokens", "output_tokens", "requests", "cost", "actions", "settled_after"}); err != nil {
		return err
	}
	for _, o := range r.Open {
		e := o.Estimate
		if err := cw.Write([]string{o.Tenant, o.Reservation, o.ID, strconv.FormatUint(o.Seq, 10), o.Created, o.ExpiresAt,
			pairs(o.Dims), strconv.FormatInt(e.Tokens, 10), strconv.FormatInt(e.InputTokens, 10), strconv.FormatInt(e.OutputTokens, 10),
			strconv.FormatInt(e.Requests, 10), strconv.FormatInt(e.Cost, 10), pairs(e.Actions), o.Settled}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// pairs writes a map as k=v;k=v with sorted keys.
func pairs[V any](m map[string]V) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(';')
		}
		fmt.Fprintf(&b, "%s=%v", k, m[k])
	}
	return b.String()
}
