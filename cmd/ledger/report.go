package main

import (
	"context"
	"strings"

	"github.com/ledgerworks/ledger/internal/cli"
	"github.com/ledgerworks/ledger/replay"
)

// report: billing totals of a period, computed from the stream itself.
func reportCmd(ctx context.Context, call *cli.Call, args []string) error {
	fs := call.Flags()
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
	if err := call.Parse(args); err != nil {
		return err
	}
	if format != "csv" && format != "json" {
		return cli.Usagef("--format %q: use csv or json", format)
	}
	from, to, loc, err := pf.parse()
	if err != nil {
		return err
	}
	o := replay.ReportOptions{From: from, To: to, Location: loc, GroupBy: replay.ParseGroupBy(groupBy), Through: through}
	if err := o.Validate(); err != nil {
		return cli.Usagef("%s", strings.TrimPrefix(err.Error(), "report: "))
	}
	nc, src, err := sf.open()
	if err != nil {
		return err
	}
	defer nc.Close()
	o.Progress = sf.progressOn(call, "report")
	rep, err := replay.BuildReport(ctx, src, o)
	if err != nil {
		return err
	}
	if format == "json" {
		return writeOut(out, call.Stdout, rep.WriteJSON)
	}
	return writeOut(out, call.Stdout, rep.WriteCSV)
}
