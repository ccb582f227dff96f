package replay

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ledgerworks/ledger/auth"
	"github.com/ledgerworks/ledger/events"
)

// Helpers for the command-line tools (and an auditor's own): connecting
// with read-only credentials, and parsing the values tools take as text.

// DialOptions say how to reach the stream.
type DialOptions struct {
	URL         string // nats://host:4222 (user:password@ allowed)
	Credentials auth.Credentials
	Name        string // the connection name shown by the server
}

// Dial connects to NATS and returns the connection and a JetStream context.
// The caller closes the connection.
func Dial(o DialOptions) (*nats.Conn, jetstream.JetStream, error) {
	if o.URL == "" {
		return nil, nil, fmt.Errorf("a NATS URL is required")
	}
	nc, err := o.Credentials.Connect(o.URL, nats.Name(o.Name), nats.MaxReconnects(-1))
	if err != nil {
		return nil, nil, fmt.Errorf("connect to %s: %w", o.URL, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// ParsePartitions reads a comma-separated list of partitions ("" is all).
func ParsePartitions(s string) ([]int, error) {
	var out []int
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n >= events.Partitions {
			return nil, fmt.Errorf("partition %q: use 0-%d", p, events.Partitions-1)
		}
		out = append(out, n)
	}
	return out, nil
}

// ParseTime reads an instant: RFC 3339 with its offset (2026-03-01T00:00:00Z,
// 2026-03-01T00:00:00+01:00), or a local date and time in loc
// (2026-03-01, 2026-03-01T06:00, 2026-03-01T06:00:00). A local time that a
// DST change skips or repeats is refused, since it names no single instant.
func ParseTime(s string, loc *time.Location) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02", "2006-01-02T15:04", "2006-01-02T15:04:05"} {
		t, err := time.ParseInLocation(layout, s, loc)
		if err != nil {
			continue
		}
		// ParseInLocation picks an instant for a skipped or repeated local
		// time without saying so; check that the time names one instant.
		y, mo, d := t.Date()
		h, mi, sec := t.Clock()
		want, _ := time.ParseInLocation(layout, s, time.UTC)
		wy, wmo, wd := want.Date()
		wh, wmi, wsec := want.Clock()
		if y != wy || mo != wmo || d != wd || h != wh || mi != wmi || sec != wsec {
			return time.Time{}, fmt.Errorf("time %q does not exist in %s (a DST change skips it)", s, loc)
		}
		const full = "2006-01-02T15:04:05.999999999"
		if local := t.Format(full); t.Add(-time.Hour).In(loc).Format(full) == local || t.Add(time.Hour).In(loc).Format(full) == local {
			return time.Time{}, fmt.Errorf("time %q happens twice in %s (a DST change repeats it): give an offset", s, loc)
		}
		return t, nil
	}
	return time.Time{}, fmt.Errorf("time %q: use RFC 3339 (2026-03-01T00:00:00+01:00) or a local 2026-03-01[T06:00[:00]]", s)
}

// ParseCheck reads a check as JSON: {"dims":{...},"groups":[...],"request":{...}}.
func ParseCheck(s string) (Check, error) {
	var c Check
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("check %s: %w", s, err)
	}
	return c, nil
}

// ParseGroupBy reads a comma-separated list of group-by keys.
func ParseGroupBy(s string) []string {
	var out []string
	for _, g := range strings.Split(s, ",") {
		if g = strings.TrimSpace(g); g != "" {
			out = append(out, g)
		}
	}
	return out
}
