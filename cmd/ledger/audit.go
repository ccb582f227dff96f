package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/ledgerworks/ledger/client"
	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/internal/cli"
	"github.com/ledgerworks/ledger/projections"
	"github.com/ledgerworks/ledger/replay"
)

const auditHelp = `Exit status: 0 when the projection matches the stream, 3 when it differs
(every difference is printed, naming its account), 1 when the audit could
not run, 2 when the command line is wrong.`

// audit: recompute from the raw events, compare with a live projection.
func auditCmd(ctx context.Context, call *cli.Call, args []string) error {
	fs := call.Flags()
	var sf streamFlags
	sf.register(fs)
	var dir, keep, tmp, format string
	var service bool
	fs.StringVar(&dir, "projection", "", "Pebble directory of the projection to audit (its projector stopped, or a checkpoint of it)")
	fs.BoolVar(&service, "service", false, "instead: compare every tenant's all-time totals with what the live service answers (usage.get)")
	fs.StringVar(&keep, "keep", "", "fold the recomputed projection into this new directory and keep it")
	fs.StringVar(&tmp, "tmp", "", "directory for the temporary recomputed projection (default the system's)")
	fs.StringVar(&format, "format", "text", "text or json")
	if err := call.Parse(args); err != nil {
		return err
	}
	if (dir == "") == !service {
		return cli.Usagef("give one of --projection DIR and --service")
	}
	nc, src, err := sf.open()
	if err != nil {
		return err
	}
	defer nc.Close()
	prog := sf.progressOn(call, "audit")
	var res *replay.AuditResult
	if service {
		c, err := client.New(nc)
		if err != nil {
			return err
		}
		res, err = replay.AuditService(ctx, src, serviceUsage{c}, prog)
		if err != nil {
			return err
		}
	} else {
		store, err := projections.OpenStore(dir, projections.StoreOptions{})
		if err != nil {
			return err
		}
		res, err = replay.Audit(ctx, src, store, replay.AuditOptions{TempDir: tmp, Keep: keep, Progress: prog})
		if cerr := store.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	if format == "json" {
		err = writeJSON(call.Stdout, res)
	} else {
		err = writeAudit(call.Stdout, res)
	}
	if err != nil {
		return err
	}
	if !res.OK() {
		return fmt.Errorf("%w: %d differences in %d accounts (%s)", replay.ErrDifferences, len(res.Differences), len(res.Accounts()), strings.Join(res.Accounts(), ", "))
	}
	return nil
}

func writeAudit(w io.Writer, r *replay.AuditResult) error {
	s := r.Stream
	fmt.Fprintf(w, "stream sequences %d-%d: %d messages, %d events (accepted %d, duplicates %d, rejected %d), refused messages %d\n",
		s.FromSeq, s.ThroughSeq, s.Messages, s.Events, s.Accepted, s.Duplicates, s.Rejected, s.Refused)
	fmt.Fprintf(w, "chained sha256 %s\n", s.ChainedSHA256)
	fmt.Fprintf(w, "live projection applied through %d; %d accounts compared\n", r.LiveApplied, r.Tenants)
	if r.Live != nil {
		fmt.Fprintf(w, "live digest       %s\nrecomputed digest %s\n", r.Live, r.Recomputed)
	}
	for _, d := range r.Differences {
		fmt.Fprintf(w, "DIFF %s\n", d)
	}
	if r.OK() {
		fmt.Fprintln(w, "OK: the live projection matches the stream")
	} else {
		fmt.Fprintf(w, "DIFFERENCES: %d in accounts %s\n", len(r.Differences), strings.Join(r.Accounts(), ", "))
	}
	return nil
}

// serviceUsage reads usage.get through the Go client.
type serviceUsage struct{ c *client.Client }

func (s serviceUsage) Usage(ctx context.Context, tenant string, afterSeq uint64) (map[events.Metric]int64, uint64, error) {
	r, err := s.c.Usage(ctx, tenant, afterSeq)
	if err != nil {
		return nil, 0, err
	}
	return r.Totals, r.AppliedSeq, nil
}
