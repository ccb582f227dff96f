package main

import (
	"context"
	"fmt"
	"io"

	"github.com/ledgerworks/ledger/replay"
)

// report: billing totals of a period, computed from the stream itself.
func reportCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("report", stderr)
	var sf streamFlags
	sf.register(fs)
	var pf periodFlags
	pf.register(fs)
	var groupBy, format, out string
	var through uint64
	fs.StringVar(&groupBy, "group-by", "tenant", "comma-separated: tenant, hour, day, week, month (in --tz) or any dimension (user, model, project, ...)")
	fs.StringVar(&format, "format", "csv", "csv or json")
	fs.Uint64Var(&through, "through-seq", 0, "last stream sequence read (default: the last when the command starts); the output states it, so a report can be run again exactly")
	fs.StringVar(&out, "out", "", "write to this file instead of stdout")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if format != "csv" && format != "json" {
		return fmt.Errorf("--format %q: use csv or json", format)
	}
	from, to, loc, err := pf.parse()
	if err != nil {
		return err
	}
	o := replay.ReportOptions{From: from, To: to, Location: loc, GroupBy: replay.ParseGroupBy(groupBy), Through: through}
	if err := o.Validate(); err != nil {
		return err
	}
	nc, src, err := sf.open()
	if err != nil {
		return err
	}
	defer nc.Close()
	if o.Progress, err = sf.progressOn(stderr, "report"); err != nil {
		return err
	}
	rep, err := replay.BuildReport(ctx, src, o)
	if err != nil {
		return err
	}
	if format == "json" {
		return writeOut(out, stdout, rep.WriteJSON)
	}
	return writeOut(out, stdout, rep.WriteCSV)
}
