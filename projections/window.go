package projections

import (
	"sync"
	"time"

	"github.com/ledgerworks/ledger/events"
)

// Buckets are identified by their start in Unix seconds, so that big-endian
// keys sort in time order.

// slidingStep is the bucket width of a sliding window: a sixtieth of its
// length, at least one second. A sliding window is exact to one bucket.
func slidingStep(w events.Window) int64 {
	step := int64(w.Length()/time.Second) / 60
	if step < 1 {
		step = 1
	}
	return step
}

// floorDiv rounds toward negative infinity.
func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// calendarStart returns the start of the calendar period holding t, in the
// window's zone. Days and weeks start at local midnight, so a day across a
// DST change is 23 or 25 hours long; weeks start on Monday.
func calendarStart(w events.Window, t time.Time) time.Time {
	lt := t.In(w.Location())
	y, m, d := lt.Date()
	switch w.Unit {
	case events.UnitHour:
		// Truncate in absolute time: an hour is an hour even across DST
		// (a zone with a 30-minute offset still has hours at :30 local).
		off := int64(0)
		_, o := lt.Zone()
		off = int64(o)
		sec := t.Unix() + off
		return time.Unix(floorDiv(sec, 3600)*3600-off, 0).In(lt.Location())
	case events.UnitDay:
		return time.Date(y, m, d, 0, 0, 0, 0, lt.Location())
	case events.UnitWeek:
		wd := (int(lt.Weekday()) + 6) % 7 // Monday = 0
		return time.Date(y, m, d-wd, 0, 0, 0, 0, lt.Location())
	default: // month
		return time.Date(y, m, 1, 0, 0, 0, 0, lt.Location())
	}
}

// calendarNext returns the start of the period after the one starting at s.
func calendarNext(w events.Window, s time.Time) time.Time {
	y, m, d := s.Date()
	switch w.Unit {
	case events.UnitHour:
		return s.Add(time.Hour)
	case events.UnitDay:
		return time.Date(y, m, d+1, 0, 0, 0, 0, s.Location())
	case events.UnitWeek:
		return time.Date(y, m, d+7, 0, 0, 0, 0, s.Location())
	default:
		return time.Date(y, m+1, 1, 0, 0, 0, 0, s.Location())
	}
}

// Bucket returns the bucket an event at t is counted in, for sliding and
// calendar windows. Rolling windows depend on state; see Tenant.rollingBucket.
func Bucket(w events.Window, t time.Time) int64 {
	switch w.Kind {
	case events.Sliding:
		step := slidingStep(w)
		return floorDiv(t.Unix(), step) * step
	case events.Calendar:
		return calendarPeriodAt(w, t).start.Unix()
	}
	return t.Unix()
}

// Span is the range of buckets a limit counts at some instant, and when the
// capacity it holds next comes back.
type Span struct {
	From, To int64     // bucket starts, inclusive
	ResetsAt time.Time // when the window (or its oldest bucket) resets
	Start    time.Time // start of the current window (zero for an unstarted rolling one)
}

// SpanAt returns the buckets a sliding or calendar window covers at now. For
// a sliding window ResetsAt is when the oldest bucket of the span leaves it.
func SpanAt(w events.Window, now time.Time) Span {
	switch w.Kind {
	case events.Sliding:
		step := slidingStep(w)
		length := int64(w.Length() / time.Second)
		to := floorDiv(now.Unix(), step) * step
		// Whole buckets that started after now-length: the window covers
		// between length-step and length, never more than length.
		from := floorDiv(now.Unix()-length, step)*step + step
		if from > to {
			from = to
		}
		return Span{From: from, To: to, Start: time.Unix(from, 0).UTC(), ResetsAt: time.Unix(from+length, 0).UTC()}
	case events.Calendar:
		p := calendarPeriodAt(w, now)
		return Span{From: p.start.Unix(), To: p.start.Unix(), Start: p.start, ResetsAt: p.next}
	}
	return Span{}
}

// calendarPeriod is one period of a calendar window: [start, next).
type calendarPeriod struct{ start, next time.Time }

// calendarPeriods remembers the last period worked out for each calendar
// window (a window is a unit and a zone, so there are few). Periods last an
// hour to a month, and finding one in a time zone (time.Date, twice) cost a
// quarter of a quota check's arithmetic and of folding a usage event;
// BenchmarkStatuses shows the difference.
var calendarPeriods sync.Map // events.Window -> *calendarPeriod

// calendarPeriodAt returns the period of calendar window w holding t: the
// same as calendarStart and calendarNext, remembered.
//
// Only a period with one UTC offset throughout is remembered: within it
// every instant has the same local clock shift, so calendarStart gives the
// same start for all of them. A period across a change of offset is worked
// out every time, since calendarStart need not agree with itself there (in
// a zone that shifts by 30 minutes, the hours before and after the change
// overlap), and the fold must not depend on which instant came first.
func calendarPeriodAt(w events.Window, t time.Time) calendarPeriod {
	if v, ok := calendarPeriods.Load(w); ok {
		if p := v.(*calendarPeriod); !t.Before(p.start) && t.Before(p.next) {
			return *p
		}
	}
	s := calendarStart(w, t)
	p := &calendarPeriod{start: s, next: calendarNext(w, s)}
	if _, end := s.ZoneBounds(); end.IsZero() || !end.Before(p.next) {
		calendarPeriods.Store(w, p)
	}
	return *p
}

// rollingSpan returns the span of a rolling window that started at start
// (Unix seconds, 0 when never used), at now.
func rollingSpan(w events.Window, start int64, now time.Time) (Span, bool) {
	length := int64(w.Length() / time.Second)
	if start == 0 || now.Unix() >= start+length {
		return Span{ResetsAt: now.Add(w.Length()).UTC()}, false
	}
	return Span{From: start, To: start, Start: time.Unix(start, 0).UTC(), ResetsAt: time.Unix(start+length, 0).UTC()}, true
}
