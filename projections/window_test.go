package projections

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ledgerworks/ledger/events"
)

func TestSlidingBucket(t *testing.T) {
	for _, tc := range []struct {
		name string
		w    events.Window
		at   string
		want string // bucket start
	}{
		{"60s: one-second buckets", slidingW(60), "2024-06-14T12:34:56.7Z", "2024-06-14T12:34:56Z"},
		{"60s: on a second", slidingW(60), "2024-06-14T12:34:56Z", "2024-06-14T12:34:56Z"},
		{"1h: one-minute buckets", slidingW(3600), "2024-06-14T12:34:56Z", "2024-06-14T12:34:00Z"},
		{"1h: last instant of a bucket", slidingW(3600), "2024-06-14T12:34:59.999999999Z", "2024-06-14T12:34:00Z"},
		{"1h: first instant of a bucket", slidingW(3600), "2024-06-14T12:35:00Z", "2024-06-14T12:35:00Z"},
		{"unit hour is 3600 s", events.Window{Kind: events.Sliding, Unit: events.UnitHour}, "2024-06-14T12:34:56Z", "2024-06-14T12:34:00Z"},
		{"10s: still at least one second", slidingW(10), "2024-06-14T12:34:56.2Z", "2024-06-14T12:34:56Z"},
		{"day: 24-minute buckets from the epoch", events.Window{Kind: events.Sliding, Unit: events.UnitDay}, "2024-06-14T12:34:56Z", "2024-06-14T12:24:00Z"},
		{"zone is ignored", events.Window{Kind: events.Sliding, Seconds: 3600, TZ: "Asia/Kolkata"}, "2024-06-14T12:34:56+05:30", "2024-06-14T12:34:00+05:30"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, want := Bucket(tc.w, at(t, tc.at)), at(t, tc.want).Unix(); got != want {
				t.Errorf("Bucket(%s) = %s, want %s", tc.at, time.Unix(got, 0).UTC(), time.Unix(want, 0).UTC())
			}
		})
	}
}

func TestSlidingSpan(t *testing.T) {
	for _, tc := range []struct {
		name     string
		w        events.Window
		now      string
		from, to string // first and last bucket covered
		resetsAt string // when bucket "from" leaves the window
	}{
		{"60s", slidingW(60), "2024-06-14T12:34:56.5Z", "2024-06-14T12:33:57Z", "2024-06-14T12:34:56Z", "2024-06-14T12:34:57Z"},
		{"1h mid-minute", slidingW(3600), "2024-06-14T12:34:56Z", "2024-06-14T11:35:00Z", "2024-06-14T12:34:00Z", "2024-06-14T12:35:00Z"},
		{"1h on a bucket edge", slidingW(3600), "2024-06-14T12:00:00Z", "2024-06-14T11:01:00Z", "2024-06-14T12:00:00Z", "2024-06-14T12:01:00Z"},
		{"1h across midnight", slidingW(3600), "2024-06-15T00:00:30Z", "2024-06-14T23:01:00Z", "2024-06-15T00:00:00Z", "2024-06-15T00:01:00Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := at(t, tc.now)
			sp := SpanAt(tc.w, now)
			from, to := at(t, tc.from), at(t, tc.to)
			if sp.From != from.Unix() || sp.To != to.Unix() {
				t.Errorf("span = %s..%s, want %s..%s", time.Unix(sp.From, 0).UTC(), time.Unix(sp.To, 0).UTC(), from, to)
			}
			if !sp.Start.Equal(from) {
				t.Errorf("start = %s, want %s", sp.Start, from)
			}
			if want := at(t, tc.resetsAt); !sp.ResetsAt.Equal(want) {
				t.Errorf("resets at %s, want %s", sp.ResetsAt, want)
			}
			step := slidingStep(tc.w)
			if n := (sp.To-sp.From)/step + 1; n != 60 {
				t.Errorf("span covers %d buckets, want 60", n)
			}
		})
	}
}

// TestSlidingCovers checks which events a sliding window counts at now: an
// event is in when it is at most length-step old (whole buckets only), out
// once it is length old, and in between it depends on where now falls in its
// bucket.
func TestSlidingCovers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		w     events.Window
		now   string
		event string
		in    bool
	}{
		{"60s: now", slidingW(60), "2024-06-14T12:34:56Z", "2024-06-14T12:34:56Z", true},
		{"60s: 59 s ago", slidingW(60), "2024-06-14T12:34:56Z", "2024-06-14T12:33:57Z", true},
		{"60s: 60 s ago", slidingW(60), "2024-06-14T12:34:56Z", "2024-06-14T12:33:56Z", false},
		{"60s: 1 s ahead of now", slidingW(60), "2024-06-14T12:34:56Z", "2024-06-14T12:34:57Z", false},
		{"1h: start of the oldest bucket", slidingW(3600), "2024-06-14T12:34:56Z", "2024-06-14T11:35:00Z", true},
		{"1h: just before the oldest bucket", slidingW(3600), "2024-06-14T12:34:56Z", "2024-06-14T11:34:59Z", false},
		{"1h: exactly an hour ago", slidingW(3600), "2024-06-14T12:34:56Z", "2024-06-14T11:34:56Z", false},
		{"1h: a minute ago", slidingW(3600), "2024-06-14T12:34:56Z", "2024-06-14T12:33:56Z", true},
		{"1h: yesterday", slidingW(3600), "2024-06-14T12:34:56Z", "2024-06-13T12:34:56Z", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sp := SpanAt(tc.w, at(t, tc.now))
			b := Bucket(tc.w, at(t, tc.event))
			if in := b >= sp.From && b <= sp.To; in != tc.in {
				t.Errorf("event at %s in window at %s = %v, want %v", tc.event, tc.now, in, tc.in)
			}
		})
	}

	// Every age: in when age <= length-step, out when age >= length.
	for _, seconds := range []int64{60, 3600} {
		w := slidingW(seconds)
		step := slidingStep(w)
		base := at(t, "2024-06-14T12:00:00Z").Unix()
		for off := int64(0); off < step; off += max(step/4, 1) {
			now := base + off
			for age := int64(0); age <= seconds+step; age++ {
				sp := SpanAt(w, time.Unix(now, 0))
				b := Bucket(w, time.Unix(now-age, 0))
				in := b >= sp.From && b <= sp.To
				if age <= seconds-step && !in {
					t.Fatalf("%d s window at %d: event %d s old is out", seconds, now, age)
				}
				if age >= seconds && in {
					t.Fatalf("%d s window at %d: event %d s old is in", seconds, now, age)
				}
			}
		}
	}
}

// TestSlidingResetsAt: a check reports when its oldest counted usage leaves
// the window, and usage leaves bucket by bucket.
func TestSlidingResetsAt(t *testing.T) {
	f := newFixture(t)
	f.setQuota(at(t, "2024-06-14T10:00:00Z"), events.Quota{ID: "q", Limits: []events.Limit{
		limitOf(events.MetricTokens, 1000, slidingW(3600)),
		limitOf(events.MetricTokens, 1000, slidingW(60)),
	}})
	f.use(at(t, "2024-06-14T11:40:10Z"), nil, nil, events.Amounts{Tokens: 100})
	f.use(at(t, "2024-06-14T12:00:00Z"), nil, nil, events.Amounts{Tokens: 10})
	f.use(at(t, "2024-06-14T12:34:30Z"), nil, nil, events.Amounts{Tokens: 1})

	for _, tc := range []struct {
		now        string
		i          int
		used       int64
		resetsAt   string
		windowFrom string
	}{
		{"2024-06-14T12:34:56Z", 0, 111, "2024-06-14T12:40:00Z", "2024-06-14T11:35:00Z"},
		{"2024-06-14T12:39:59Z", 0, 111, "2024-06-14T12:40:00Z", "2024-06-14T11:40:00Z"},
		{"2024-06-14T12:40:00Z", 0, 11, "2024-06-14T13:00:00Z", "2024-06-14T11:41:00Z"},
		{"2024-06-14T13:00:00Z", 0, 1, "2024-06-14T13:34:00Z", "2024-06-14T12:01:00Z"},
		{"2024-06-14T13:34:00Z", 0, 0, "2024-06-14T13:35:00Z", "2024-06-14T12:35:00Z"}, // empty: the oldest bucket of the span
		{"2024-06-14T12:34:56Z", 1, 1, "2024-06-14T12:35:30Z", "2024-06-14T12:33:57Z"},
		{"2024-06-14T12:35:30Z", 1, 0, "2024-06-14T12:35:31Z", "2024-06-14T12:34:31Z"},
	} {
		st := f.status(at(t, tc.now), nil, nil, events.Amounts{}, "q", tc.i)
		if st.Used != tc.used {
			t.Errorf("limit %d at %s: used %d, want %d", tc.i, tc.now, st.Used, tc.used)
		}
		if want := at(t, tc.resetsAt); !st.ResetsAt.Equal(want) {
			t.Errorf("limit %d at %s: resets at %s, want %s", tc.i, tc.now, st.ResetsAt.UTC(), want.UTC())
		}
		if want := at(t, tc.windowFrom); !st.WindowStart.Equal(want) {
			t.Errorf("limit %d at %s: window starts %s, want %s", tc.i, tc.now, st.WindowStart.UTC(), want.UTC())
		}
	}
}

// TestCalendarPeriods pins calendar periods in zones with daylight saving
// time. Expected instants carry explicit offsets, so they do not come from
// the zone database the code uses.
func TestCalendarPeriods(t *testing.T) {
	const ny, berlin = "America/New_York", "Europe/Berlin"
	for _, tc := range []struct {
		name       string
		w          events.Window
		at         string
		start, end string
		length     time.Duration
	}{
		// New York: EST -05:00, EDT -04:00; 2024-03-10 02:00 -> 03:00, 2024-11-03 02:00 -> 01:00.
		{"NY day, summer", calendarW("day", ny), "2024-06-14T12:00:00-04:00", "2024-06-14T00:00:00-04:00", "2024-06-15T00:00:00-04:00", 24 * time.Hour},
		{"NY day, 23:59:59", calendarW("day", ny), "2024-06-14T23:59:59-04:00", "2024-06-14T00:00:00-04:00", "2024-06-15T00:00:00-04:00", 24 * time.Hour},
		{"NY day, 00:00:00 next day", calendarW("day", ny), "2024-06-15T00:00:00-04:00", "2024-06-15T00:00:00-04:00", "2024-06-16T00:00:00-04:00", 24 * time.Hour},
		{"NY day, a UTC day earlier", calendarW("day", ny), "2024-06-15T02:00:00Z", "2024-06-14T00:00:00-04:00", "2024-06-15T00:00:00-04:00", 24 * time.Hour},
		{"NY day, 23 hours (spring forward)", calendarW("day", ny), "2024-03-10T12:00:00-04:00", "2024-03-10T00:00:00-05:00", "2024-03-11T00:00:00-04:00", 23 * time.Hour},
		{"NY day, 23 hours, before the change", calendarW("day", ny), "2024-03-10T01:59:59-05:00", "2024-03-10T00:00:00-05:00", "2024-03-11T00:00:00-04:00", 23 * time.Hour},
		{"NY day, 25 hours (fall back)", calendarW("day", ny), "2024-11-03T23:30:00-05:00", "2024-11-03T00:00:00-04:00", "2024-11-04T00:00:00-05:00", 25 * time.Hour},
		{"NY day, 25 hours, first 01:30", calendarW("day", ny), "2024-11-03T01:30:00-04:00", "2024-11-03T00:00:00-04:00", "2024-11-04T00:00:00-05:00", 25 * time.Hour},
		{"NY day, 25 hours, second 01:30", calendarW("day", ny), "2024-11-03T01:30:00-05:00", "2024-11-03T00:00:00-04:00", "2024-11-04T00:00:00-05:00", 25 * time.Hour},
		{"NY hour, last before spring forward", calendarW("hour", ny), "2024-03-10T01:59:59-05:00", "2024-03-10T01:00:00-05:00", "2024-03-10T03:00:00-04:00", time.Hour},
		{"NY hour, first after spring forward", calendarW("hour", ny), "2024-03-10T03:00:00-04:00", "2024-03-10T03:00:00-04:00", "2024-03-10T04:00:00-04:00", time.Hour},
		{"NY hour, first 01:30 of fall back", calendarW("hour", ny), "2024-11-03T01:30:00-04:00", "2024-11-03T01:00:00-04:00", "2024-11-03T01:00:00-05:00", time.Hour},
		{"NY hour, second 01:30 of fall back", calendarW("hour", ny), "2024-11-03T01:30:00-05:00", "2024-11-03T01:00:00-05:00", "2024-11-03T02:00:00-05:00", time.Hour},
		{"NY week, Sunday of spring forward", calendarW("week", ny), "2024-03-10T12:00:00-04:00", "2024-03-04T00:00:00-05:00", "2024-03-11T00:00:00-04:00", 7*24*time.Hour - time.Hour},
		{"NY week, Monday 00:00", calendarW("week", ny), "2024-03-11T00:00:00-04:00", "2024-03-11T00:00:00-04:00", "2024-03-18T00:00:00-04:00", 7 * 24 * time.Hour},
		{"NY week, Sunday 23:59:59", calendarW("week", ny), "2024-03-17T23:59:59-04:00", "2024-03-11T00:00:00-04:00", "2024-03-18T00:00:00-04:00", 7 * 24 * time.Hour},
		{"NY week, fall back", calendarW("week", ny), "2024-11-03T12:00:00-05:00", "2024-10-28T00:00:00-04:00", "2024-11-04T00:00:00-05:00", 7*24*time.Hour + time.Hour},
		{"NY week, across a month and year", calendarW("week", ny), "2025-01-01T09:00:00-05:00", "2024-12-30T00:00:00-05:00", "2025-01-06T00:00:00-05:00", 7 * 24 * time.Hour},
		{"NY month, Jan 31 23:59:59", calendarW("month", ny), "2024-01-31T23:59:59-05:00", "2024-01-01T00:00:00-05:00", "2024-02-01T00:00:00-05:00", 31 * 24 * time.Hour},
		{"NY month, Feb 1 00:00", calendarW("month", ny), "2024-02-01T00:00:00-05:00", "2024-02-01T00:00:00-05:00", "2024-03-01T00:00:00-05:00", 29 * 24 * time.Hour},
		{"NY month, leap day", calendarW("month", ny), "2024-02-29T23:59:59-05:00", "2024-02-01T00:00:00-05:00", "2024-03-01T00:00:00-05:00", 29 * 24 * time.Hour},
		{"NY month, Feb of a common year", calendarW("month", ny), "2023-02-28T23:59:59-05:00", "2023-02-01T00:00:00-05:00", "2023-03-01T00:00:00-05:00", 28 * 24 * time.Hour},
		{"NY month, March with spring forward", calendarW("month", ny), "2024-03-15T12:00:00-04:00", "2024-03-01T00:00:00-05:00", "2024-04-01T00:00:00-04:00", 31*24*time.Hour - time.Hour},
		{"NY month, December", calendarW("month", ny), "2024-12-31T23:59:59-05:00", "2024-12-01T00:00:00-05:00", "2025-01-01T00:00:00-05:00", 31 * 24 * time.Hour},
		{"NY month, already January in UTC", calendarW("month", ny), "2025-01-01T03:00:00Z", "2024-12-01T00:00:00-05:00", "2025-01-01T00:00:00-05:00", 31 * 24 * time.Hour},

		// Berlin: CET +01:00, CEST +02:00; 2024-03-31 02:00 -> 03:00, 2024-10-27 03:00 -> 02:00.
		{"Berlin day, 23:59:59", calendarW("day", berlin), "2024-06-14T23:59:59+02:00", "2024-06-14T00:00:00+02:00", "2024-06-15T00:00:00+02:00", 24 * time.Hour},
		{"Berlin day, 00:00:00 next day (still the 14th in UTC)", calendarW("day", berlin), "2024-06-15T00:00:00+02:00", "2024-06-15T00:00:00+02:00", "2024-06-16T00:00:00+02:00", 24 * time.Hour},
		{"Berlin day, 23 hours", calendarW("day", berlin), "2024-03-31T12:00:00+02:00", "2024-03-31T00:00:00+01:00", "2024-04-01T00:00:00+02:00", 23 * time.Hour},
		{"Berlin day, 25 hours", calendarW("day", berlin), "2024-10-27T12:00:00+01:00", "2024-10-27T00:00:00+02:00", "2024-10-28T00:00:00+01:00", 25 * time.Hour},
		{"Berlin hour, first 02:30 of fall back", calendarW("hour", berlin), "2024-10-27T02:30:00+02:00", "2024-10-27T02:00:00+02:00", "2024-10-27T02:00:00+01:00", time.Hour},
		{"Berlin hour, second 02:30 of fall back", calendarW("hour", berlin), "2024-10-27T02:30:00+01:00", "2024-10-27T02:00:00+01:00", "2024-10-27T03:00:00+01:00", time.Hour},
		{"Berlin hour, spring forward", calendarW("hour", berlin), "2024-03-31T01:15:00+01:00", "2024-03-31T01:00:00+01:00", "2024-03-31T03:00:00+02:00", time.Hour},
		{"Berlin week, fall back", calendarW("week", berlin), "2024-10-27T23:59:59+01:00", "2024-10-21T00:00:00+02:00", "2024-10-28T00:00:00+01:00", 7*24*time.Hour + time.Hour},
		{"Berlin week, Monday 00:00", calendarW("week", berlin), "2024-10-28T00:00:00+01:00", "2024-10-28T00:00:00+01:00", "2024-11-04T00:00:00+01:00", 7 * 24 * time.Hour},
		{"Berlin month, March", calendarW("month", berlin), "2024-03-31T23:59:59+02:00", "2024-03-01T00:00:00+01:00", "2024-04-01T00:00:00+02:00", 31*24*time.Hour - time.Hour},
		{"Berlin month, leap day", calendarW("month", berlin), "2024-02-29T00:00:00+01:00", "2024-02-01T00:00:00+01:00", "2024-03-01T00:00:00+01:00", 29 * 24 * time.Hour},

		// A half-hour zone and UTC.
		{"Kolkata hour at :30 UTC", calendarW("hour", "Asia/Kolkata"), "2024-06-14T12:10:00+05:30", "2024-06-14T12:00:00+05:30", "2024-06-14T13:00:00+05:30", time.Hour},
		{"UTC day (no zone)", calendarW("day", ""), "2024-06-14T23:59:59Z", "2024-06-14T00:00:00Z", "2024-06-15T00:00:00Z", 24 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, start, end := at(t, tc.at), at(t, tc.start), at(t, tc.end)
			if got := end.Sub(start); got != tc.length {
				t.Fatalf("bad case: period is %s, want %s", got, tc.length)
			}
			if got := Bucket(tc.w, ev); got != start.Unix() {
				t.Errorf("Bucket = %s, want %s", time.Unix(got, 0).UTC(), start.UTC())
			}
			sp := SpanAt(tc.w, ev)
			if sp.From != start.Unix() || sp.To != start.Unix() {
				t.Errorf("span %d..%d, want %d..%d", sp.From, sp.To, start.Unix(), start.Unix())
			}
			if !sp.Start.Equal(start) {
				t.Errorf("window start %s, want %s", sp.Start, start)
			}
			if !sp.ResetsAt.Equal(end) {
				t.Errorf("resets at %s, want %s", sp.ResetsAt, end)
			}
			// The last second of the period is in it; the next one is not.
			if got := Bucket(tc.w, end.Add(-time.Second)); got != start.Unix() {
				t.Errorf("last second %s in bucket %s, want %s", end.Add(-time.Second), time.Unix(got, 0).UTC(), start.UTC())
			}
			if got := Bucket(tc.w, end); got != end.Unix() {
				t.Errorf("end %s in bucket %s, want its own", end, time.Unix(got, 0).UTC())
			}
		})
	}
}

// TestCalendarBoundaries walks every period over a year of local time in
// both zones: periods tile time without gaps or overlaps, days start at
// local midnight, weeks on Monday, months on the 1st.
func TestCalendarBoundaries(t *testing.T) {
	for _, tz := range []string{"America/New_York", "Europe/Berlin"} {
		loc, err := events.LoadZone(tz)
		if err != nil {
			t.Fatal(err)
		}
		for _, run := range []struct {
			unit     string
			from, to time.Time
		}{
			// Hours around both changes of 2024; the other units all year.
			{events.UnitHour, time.Date(2024, 3, 9, 0, 0, 0, 0, loc), time.Date(2024, 4, 1, 0, 0, 0, 0, loc)},
			{events.UnitHour, time.Date(2024, 10, 26, 0, 0, 0, 0, loc), time.Date(2024, 11, 4, 0, 0, 0, 0, loc)},
			{events.UnitDay, time.Date(2024, 1, 1, 0, 0, 0, 0, loc), time.Date(2025, 1, 1, 0, 0, 0, 0, loc)},
			{events.UnitWeek, time.Date(2024, 1, 1, 0, 0, 0, 0, loc), time.Date(2025, 1, 1, 0, 0, 0, 0, loc)},
			{events.UnitMonth, time.Date(2024, 1, 1, 0, 0, 0, 0, loc), time.Date(2025, 1, 1, 0, 0, 0, 0, loc)},
		} {
			unit := run.unit
			w := calendarW(unit, tz)
			cur := SpanAt(w, run.from)
			short, long := 0, 0
			for cur.Start.Before(run.to) {
				next := SpanAt(w, cur.ResetsAt)
				if !next.Start.Equal(cur.ResetsAt) {
					t.Fatalf("%s %s: period after %s starts %s, not at its end %s", tz, unit, cur.Start, next.Start, cur.ResetsAt)
				}
				if Bucket(w, cur.ResetsAt.Add(-time.Nanosecond)) != cur.From {
					t.Fatalf("%s %s: last instant of %s is not in it", tz, unit, cur.Start)
				}
				ls := cur.Start.In(loc)
				if unit != events.UnitHour && (ls.Hour() != 0 || ls.Minute() != 0 || ls.Second() != 0) {
					t.Fatalf("%s %s: period starts at %s, not local midnight", tz, unit, ls)
				}
				if unit == events.UnitWeek && ls.Weekday() != time.Monday {
					t.Fatalf("%s week starts on %s", tz, ls.Weekday())
				}
				if unit == events.UnitMonth && ls.Day() != 1 {
					t.Fatalf("%s month starts on day %d", tz, ls.Day())
				}
				if unit == events.UnitDay {
					switch cur.ResetsAt.Sub(cur.Start) {
					case 23 * time.Hour:
						short++
					case 25 * time.Hour:
						long++
					case 24 * time.Hour:
					default:
						t.Fatalf("%s day %s lasts %s", tz, ls, cur.ResetsAt.Sub(cur.Start))
					}
				}
				if unit == events.UnitHour && cur.ResetsAt.Sub(cur.Start) != time.Hour {
					t.Fatalf("%s hour %s lasts %s", tz, ls, cur.ResetsAt.Sub(cur.Start))
				}
				cur = next
			}
			if unit == events.UnitDay && (short != 1 || long != 1) {
				t.Errorf("%s 2024: %d days of 23 h and %d of 25 h, want 1 and 1", tz, short, long)
			}
		}
	}
}

// TestRollingWindow: seed 001's window starts at a split's first use and
// resets its length later; the next use after that opens a new one.
func TestRollingWindow(t *testing.T) {
	f := newFixture(t)
	t0 := at(t, "2024-06-14T12:00:00Z")
	f.setQuota(t0.Add(-time.Hour), events.Quota{ID: "llm", Split: []string{"user"}, Limits: []events.Limit{
		limitOf(events.MetricRequests, 3, rollingW(3600)),
		limitOf(events.MetricTokens, 1000, events.Window{Kind: events.Rolling, Unit: events.UnitDay}),
	}})
	alice, bob := dims("user", "alice"), dims("user", "bob")
	one := events.Amounts{Requests: 1, Tokens: 100}

	type check struct {
		now      time.Duration // after t0
		who      events.Dimensions
		i        int
		used     int64
		open     bool
		start    time.Duration // window start after t0, when open
		resetsAt time.Duration // after t0
	}
	steps := []struct {
		use    time.Duration // after t0; -1: no use
		who    events.Dimensions
		checks []check
	}{
		{-1, nil, []check{
			// Never used: no window, a use now would reset an hour from now.
			{now: 0, who: alice, used: 0, open: false, resetsAt: time.Hour},
		}},
		{0, alice, []check{
			{now: 10 * time.Minute, who: alice, used: 1, open: true, start: 0, resetsAt: time.Hour},
			{now: 10 * time.Minute, who: alice, i: 1, used: 100, open: true, start: 0, resetsAt: 24 * time.Hour},
			// Bob's window is his own.
			{now: 10 * time.Minute, who: bob, used: 0, open: false, resetsAt: 70 * time.Minute},
		}},
		{time.Hour - time.Second, alice, []check{
			{now: time.Hour - time.Second, who: alice, used: 2, open: true, start: 0, resetsAt: time.Hour},
		}},
		{-1, nil, []check{
			// After D the window is over: nothing used until the next use.
			{now: time.Hour, who: alice, used: 0, open: false, resetsAt: 2 * time.Hour},
			{now: 3 * time.Hour, who: alice, used: 0, open: false, resetsAt: 4 * time.Hour},
			// The day window is still open.
			{now: time.Hour, who: alice, i: 1, used: 200, open: true, start: 0, resetsAt: 24 * time.Hour},
		}},
		{90 * time.Minute, alice, []check{
			{now: 91 * time.Minute, who: alice, used: 1, open: true, start: 90 * time.Minute, resetsAt: 150 * time.Minute},
			{now: 91 * time.Minute, who: alice, i: 1, used: 300, open: true, start: 0, resetsAt: 24 * time.Hour},
		}},
		{100 * time.Minute, bob, []check{
			{now: 101 * time.Minute, who: bob, used: 1, open: true, start: 100 * time.Minute, resetsAt: 160 * time.Minute},
			{now: 101 * time.Minute, who: alice, used: 1, open: true, start: 90 * time.Minute, resetsAt: 150 * time.Minute},
		}},
		{25 * time.Hour, alice, []check{
			{now: 25 * time.Hour, who: alice, i: 1, used: 100, open: true, start: 25 * time.Hour, resetsAt: 49 * time.Hour},
		}},
	}
	for _, s := range steps {
		if s.use >= 0 {
			f.use(t0.Add(s.use), s.who, nil, one)
		}
		for _, c := range s.checks {
			st := f.status(t0.Add(c.now), c.who, nil, events.Amounts{}, "llm", c.i)
			if st.Used != c.used {
				t.Errorf("after use at +%s, %s limit %d at +%s: used %d, want %d", s.use, c.who["user"], c.i, c.now, st.Used, c.used)
			}
			if open := !st.WindowStart.IsZero(); open != c.open {
				t.Errorf("after use at +%s, %s limit %d at +%s: window open %v, want %v", s.use, c.who["user"], c.i, c.now, open, c.open)
			}
			if c.open && !st.WindowStart.Equal(t0.Add(c.start)) {
				t.Errorf("after use at +%s, %s limit %d at +%s: window starts %s, want +%s", s.use, c.who["user"], c.i, c.now, st.WindowStart.Sub(t0), c.start)
			}
			if !st.ResetsAt.Equal(t0.Add(c.resetsAt)) {
				t.Errorf("after use at +%s, %s limit %d at +%s: resets at +%s, want +%s", s.use, c.who["user"], c.i, c.now, st.ResetsAt.Sub(t0), c.resetsAt)
			}
		}
	}
}

// TestRollingReservation: a reservation opens the rolling window like a use
// does, and its actual usage is counted in that window.
func TestRollingReservation(t *testing.T) {
	f := newFixture(t)
	t0 := at(t, "2024-06-14T12:00:00Z")
	f.setQuota(t0.Add(-time.Hour), events.Quota{ID: "llm", Limits: []events.Limit{limitOf(events.MetricTokens, 1000, rollingW(600))}})
	f.apply(t0, nil, nil, &events.ReservationCreated{Reservation: "r1", Estimate: events.Amounts{Tokens: 300}, ExpiresAt: t0.Add(time.Minute)})
	st := f.status(t0.Add(time.Second), nil, nil, events.Amounts{}, "llm", 0)
	if st.Reserved != 300 || st.Used != 0 || !st.WindowStart.Equal(t0) {
		t.Fatalf("after reserve: %+v", st)
	}
	// Reconciled after the window has ended: counted in the old window.
	f.apply(t0.Add(11*time.Minute), nil, nil, &events.ReservationReconciled{Reservation: "r1", Actual: events.Amounts{Tokens: 250}})
	if st := f.status(t0.Add(11*time.Minute), nil, nil, events.Amounts{}, "llm", 0); st.Used != 0 || st.Reserved != 0 {
		t.Errorf("check in the next window: used %d reserved %d, want 0 0", st.Used, st.Reserved)
	}
	if st := f.status(t0.Add(9*time.Minute), nil, nil, events.Amounts{}, "llm", 0); st.Used != 250 || st.Reserved != 0 {
		t.Errorf("check in the reservation's window: used %d reserved %d, want 250 0", st.Used, st.Reserved)
	}
}

// TestLateEvents: an event that arrives after a later one (within a
// realistic clock skew) counts in its own bucket, calendar period or rolling
// window, not in the one current when it arrives.
func TestLateEvents(t *testing.T) {
	const ny = "America/New_York"
	t.Run("calendar day", func(t *testing.T) {
		f := newFixture(t)
		f.setQuota(at(t, "2024-06-01T00:00:00Z"), events.Quota{ID: "daily", Limits: []events.Limit{
			limitOf(events.MetricTokens, 1000, calendarW(events.UnitDay, ny)),
			limitOf(events.MetricTokens, 1000, calendarW(events.UnitHour, ny)),
			limitOf(events.MetricTokens, 1000, calendarW(events.UnitMonth, ny)),
		}})
		f.use(at(t, "2024-06-15T00:00:30-04:00"), nil, nil, events.Amounts{Tokens: 10})
		f.use(at(t, "2024-06-14T23:59:30-04:00"), nil, nil, events.Amounts{Tokens: 1}) // 60 s late
		for _, c := range []struct {
			now  string
			i    int
			used int64
		}{
			{"2024-06-15T00:01:00-04:00", 0, 10},
			{"2024-06-14T23:59:59-04:00", 0, 1},
			{"2024-06-15T00:01:00-04:00", 1, 10},
			{"2024-06-14T23:59:59-04:00", 1, 1},
			{"2024-06-15T00:01:00-04:00", 2, 11}, // same month
		} {
			if got := f.used(at(t, c.now), nil, nil, "daily", c.i); got != c.used {
				t.Errorf("limit %d at %s: used %d, want %d", c.i, c.now, got, c.used)
			}
		}
	})
	t.Run("calendar month", func(t *testing.T) {
		f := newFixture(t)
		f.setQuota(at(t, "2024-01-01T00:00:00Z"), events.Quota{ID: "monthly", Limits: []events.Limit{limitOf(events.MetricTokens, 1000, calendarW(events.UnitMonth, ny))}})
		f.use(at(t, "2024-03-01T00:01:00-05:00"), nil, nil, events.Amounts{Tokens: 10})
		f.use(at(t, "2024-02-29T23:59:00-05:00"), nil, nil, events.Amounts{Tokens: 1}) // 2 minutes late
		if got := f.used(at(t, "2024-03-01T00:02:00-05:00"), nil, nil, "monthly", 0); got != 10 {
			t.Errorf("March: used %d, want 10", got)
		}
		if got := f.used(at(t, "2024-02-29T23:59:59-05:00"), nil, nil, "monthly", 0); got != 1 {
			t.Errorf("February: used %d, want 1", got)
		}
	})
	t.Run("sliding", func(t *testing.T) {
		f := newFixture(t)
		f.setQuota(at(t, "2024-06-14T00:00:00Z"), events.Quota{ID: "rate", Limits: []events.Limit{limitOf(events.MetricTokens, 1000, slidingW(60))}})
		f.use(at(t, "2024-06-14T12:01:00Z"), nil, nil, events.Amounts{Tokens: 10})
		f.use(at(t, "2024-06-14T12:00:00Z"), nil, nil, events.Amounts{Tokens: 1}) // 60 s late
		if got := f.used(at(t, "2024-06-14T12:01:00Z"), nil, nil, "rate", 0); got != 10 {
			t.Errorf("at 12:01:00: used %d, want 10 (the late event is a minute old)", got)
		}
		if got := f.used(at(t, "2024-06-14T12:00:59Z"), nil, nil, "rate", 0); got != 1 {
			t.Errorf("at 12:00:59: used %d, want 1", got)
		}
	})
	t.Run("rolling, previous window", func(t *testing.T) {
		f := newFixture(t)
		t0 := at(t, "2024-06-14T12:00:00Z")
		f.setQuota(t0.Add(-time.Hour), events.Quota{ID: "roll", Limits: []events.Limit{limitOf(events.MetricTokens, 1000, rollingW(600))}})
		f.use(t0, nil, nil, events.Amounts{Tokens: 100})                                   // opens [t0, t0+10m)
		f.use(t0.Add(10*time.Minute+30*time.Second), nil, nil, events.Amounts{Tokens: 10}) // opens [t0+10m30s, ...)
		f.use(t0.Add(9*time.Minute+50*time.Second), nil, nil, events.Amounts{Tokens: 1})   // 40 s late: the first window
		if got := f.used(t0.Add(11*time.Minute), nil, nil, "roll", 0); got != 10 {
			t.Errorf("current window: used %d, want 10", got)
		}
		qs := f.ten.Quotas["roll"]
		k := CounterKey{Tenant: f.ten.Name, Quota: "roll", Limit: qs.LimitKey(0)}
		if used, _, _ := f.c.Sum(k, t0.Unix(), t0.Unix()); used != 101 {
			t.Errorf("first window: used %d, want 101", used)
		}
	})
	t.Run("rolling, before the first window", func(t *testing.T) {
		// The first use to arrive opened the window, but a use from 30 s
		// earlier arrives after it: it must still be counted.
		f := newFixture(t)
		t0 := at(t, "2024-06-14T12:00:00Z")
		f.setQuota(t0.Add(-time.Hour), events.Quota{ID: "roll", Limits: []events.Limit{limitOf(events.MetricTokens, 1000, rollingW(3600))}})
		f.use(t0.Add(30*time.Second), nil, nil, events.Amounts{Tokens: 10})
		f.use(t0, nil, nil, events.Amounts{Tokens: 1})
		if got := f.used(t0.Add(time.Minute), nil, nil, "roll", 0); got != 11 {
			t.Errorf("used %d, want 11: a late first use was dropped", got)
		}
	})
	t.Run("rolling, between windows", func(t *testing.T) {
		// [t0, t0+10m) ended; a use at t0+10m30s opened the next window; a
		// use from t0+10m10s arrives late. It is in no window yet known and
		// must count in the following one rather than be dropped.
		f := newFixture(t)
		t0 := at(t, "2024-06-14T12:00:00Z")
		f.setQuota(t0.Add(-time.Hour), events.Quota{ID: "roll", Limits: []events.Limit{limitOf(events.MetricTokens, 1000, rollingW(600))}})
		f.use(t0, nil, nil, events.Amounts{Tokens: 100})
		f.use(t0.Add(10*time.Minute+30*time.Second), nil, nil, events.Amounts{Tokens: 10})
		f.use(t0.Add(10*time.Minute+10*time.Second), nil, nil, events.Amounts{Tokens: 1})
		if got := f.used(t0.Add(11*time.Minute), nil, nil, "roll", 0); got != 11 {
			t.Errorf("used %d, want 11", got)
		}
	})
}

// The remembered calendar period is the one worked out afresh, whatever
// order instants come in: forward as a live ledger sees them, backward and
// jumping as a replay of late events does, from several goroutines at once
// (checks and the fold share the memory), and around every change of UTC
// offset in zones that shift by an hour, by 30 minutes (Lord Howe, where
// the hours before and after the change overlap), at midnight (São Paulo in
// 2018) or by 45 minutes (Chatham). The instants alternate between just
// after a change and just before it.
func TestCalendarPeriodRemembered(t *testing.T) {
	zones := []string{"UTC", "America/New_York", "Europe/Berlin", "Asia/Kolkata", "Australia/Lord_Howe", "America/Sao_Paulo", "Pacific/Chatham"}
	units := []string{events.UnitHour, events.UnitDay, events.UnitWeek, events.UnitMonth}
	steps := []time.Duration{0, time.Nanosecond, 10 * time.Minute, 29 * time.Minute, 31 * time.Minute, 59 * time.Minute, 61 * time.Minute, 25 * time.Hour}
	// probes are the instants around every change of offset in 2018 and
	// 2024: just after a change, then as far before it, so that what was
	// remembered after the change is asked about before it.
	probes := func(loc *time.Location) []time.Time {
		var out []time.Time
		for _, year := range []int{2018, 2024} {
			at := time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC)
			for range 8 {
				_, end := at.In(loc).ZoneBounds()
				if end.IsZero() || end.Year() > year {
					break
				}
				for _, d := range steps {
					out = append(out, end.Add(d), end.Add(-d))
				}
				at = end
			}
			out = append(out, at.AddDate(0, 0, 3)) // a day with no change at all
		}
		return out
	}
	same := func(a, b Span) bool {
		return a.From == b.From && a.To == b.To && a.Start.Equal(b.Start) && a.ResetsAt.Equal(b.ResetsAt)
	}
	check := func(w events.Window, at time.Time) error {
		start := calendarStart(w, at)
		want := Span{From: start.Unix(), To: start.Unix(), Start: start, ResetsAt: calendarNext(w, start)}
		if got := SpanAt(w, at); !same(got, want) {
			return fmt.Errorf("%s %s at %s: span %+v, want %+v", w.TZ, w.Unit, at.UTC(), got, want)
		}
		if got := Bucket(w, at); got != start.Unix() {
			return fmt.Errorf("%s %s at %s: bucket %d, want %d", w.TZ, w.Unit, at.UTC(), got, start.Unix())
		}
		return nil
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, tz := range zones {
				loc, err := events.LoadZone(tz)
				if err != nil {
					t.Error(err)
					return
				}
				ps := probes(loc)
				if g%2 == 1 {
					slices.Reverse(ps) // before each change first, and walking back
				}
				for _, unit := range units {
					w := events.Window{Kind: events.Calendar, Unit: unit, TZ: tz}
					for _, at := range ps {
						if err := check(w, at); err != nil {
							t.Error(err)
							return
						}
					}
				}
			}
		}()
	}
	wg.Wait()
}
