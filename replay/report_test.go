package replay_test

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/replay"
	rt "github.com/ledgerworks/ledger/replay/replaytest"
)

var update = flag.Bool("update", false, "rewrite the golden reports in testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func berlin(t *testing.T) *time.Location {
	t.Helper()
	loc, err := events.LoadZone("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

type reportCase struct {
	name   string
	opts   replay.ReportOptions
	format string
}

func reportCases(t *testing.T) []reportCase {
	be := berlin(t)
	return []reportCase{
		{"report_dst_spring_day.csv", replay.ReportOptions{From: time.Date(2026, 3, 28, 0, 0, 0, 0, be), To: time.Date(2026, 3, 30, 0, 0, 0, 0, be), Location: be, GroupBy: []string{"tenant", "user", "model", "day"}}, "csv"},
		{"report_dst_spring_day.json", replay.ReportOptions{From: time.Date(2026, 3, 28, 0, 0, 0, 0, be), To: time.Date(2026, 3, 30, 0, 0, 0, 0, be), Location: be, GroupBy: []string{"tenant", "user", "model", "day"}}, "json"},
		{"report_dst_fall_hour.csv", replay.ReportOptions{From: time.Date(2026, 10, 25, 0, 0, 0, 0, be), To: time.Date(2026, 10, 26, 0, 0, 0, 0, be), Location: be, GroupBy: []string{"hour", "user"}}, "csv"},
		{"report_tenant_utc.csv", replay.ReportOptions{From: rt.TS("2026-03-28T00:00:00Z"), To: rt.TS("2026-03-30T00:00:00Z")}, "csv"},
	}
}

func render(t *testing.T, ctx context.Context, src replay.Source, c reportCase) []byte {
	t.Helper()
	rep, err := replay.BuildReport(ctx, src, c.opts)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if c.format == "json" {
		err = rep.WriteJSON(&b)
	} else {
		err = rep.WriteCSV(&b)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// appendFixture appends the billing fixture to a new stream.
func appendFixture(t *testing.T) jetstream.JetStream {
	t.Helper()
	_, js := rt.Stream(t)
	rt.AppendAll(t, js, rt.BillingFixture())
	return js
}

// Reports of periods crossing both DST changes match the golden files; the
// same report twice is byte-identical, and so is the report computed from
// the same messages held in memory.
func TestReportGolden(t *testing.T) {
	ctx := rt.Ctx(t, 60*time.Second)
	js := appendFixture(t)
	src := rt.Source(t, js)
	var mem replay.MemorySource
	if _, err := src.Read(ctx, replay.Range{}, func(b []replay.Message) error {
		mem.Messages = append(mem.Messages, b...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	mem.Batch = 3
	for _, c := range reportCases(t) {
		t.Run(c.name, func(t *testing.T) {
			first := render(t, ctx, src, c)
			golden(t, c.name, first)
			if again := render(t, ctx, src, c); !bytes.Equal(first, again) {
				t.Fatalf("a second run differs:\n%s\n---\n%s", first, again)
			}
			if fromMem := render(t, ctx, &mem, c); !bytes.Equal(first, fromMem) {
				t.Fatalf("the report from the same messages in memory differs:\n%s\n---\n%s", first, fromMem)
			}
		})
	}
}

func TestReportOptionsValidate(t *testing.T) {
	for _, o := range []replay.ReportOptions{
		{},
		{From: rt.TS("2026-01-02T00:00:00Z"), To: rt.TS("2026-01-01T00:00:00Z")},
		{From: rt.TS("2026-01-01T00:00:00Z"), To: rt.TS("2026-01-02T00:00:00Z"), GroupBy: []string{"group"}},
		{From: rt.TS("2026-01-01T00:00:00Z"), To: rt.TS("2026-01-02T00:00:00Z"), GroupBy: []string{"user", "user"}},
	} {
		if err := o.Validate(); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}
