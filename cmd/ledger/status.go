package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ledgerworks/ledger/auth"
	"github.com/ledgerworks/ledger/client"
	"github.com/ledgerworks/ledger/cluster"
	"github.com/ledgerworks/ledger/internal/cli"
)

// statusCmd prints every member of the cluster that answers within --wait:
// what it owns, stands by for or follows, and how far its projection is.
func statusCmd(ctx context.Context, call *cli.Call, args []string) error {
	fs := call.Flags()
	url := fs.String("nats-url", "nats://127.0.0.1:4222", "NATS server (or comma-separated cluster URLs)")
	wait := fs.Duration("wait", time.Second, "how long to gather answers (nobody knows how many members there are)")
	asJSON := fs.Bool("json", false, "print the members' status as JSON")
	var cred auth.Credentials
	cred.RegisterFlags(fs, true)
	if err := call.Parse(args); err != nil {
		return err
	}
	stdout := call.Stdout
	nc, err := cred.Connect(*url, nats.Name("ledger-status"), nats.Timeout(5*time.Second))
	if err != nil {
		return fmt.Errorf("connect to %s: %w", *url, err)
	}
	defer nc.Close()
	c, err := client.New(nc)
	if err != nil {
		return err
	}
	members, err := c.Members(ctx, *wait)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(members)
	}
	if len(members) == 0 {
		return fmt.Errorf("no member of the ledger answered within %s", *wait)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tROLE\tREADY\tAPPLIED\tLAG\tOWNS (epoch)\tSTANDBY\tFOLLOWS")
	for _, m := range members {
		var owns []string
		var standby, follows []int
		for _, p := range m.Partitions {
			switch p.State {
			case "owner":
				owns = append(owns, fmt.Sprintf("%d(%d)", p.Partition, p.Epoch))
			case "standby":
				standby = append(standby, p.Partition)
			default:
				follows = append(follows, p.Partition)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%t\t%d\t%d\t%s\t%s\t%s\n", m.Member, m.Role, m.Ready, m.AppliedSeq, m.Lag, list(owns), ranges(standby), ranges(follows))
	}
	return tw.Flush()
}

// ranges is a partition list as "0-7,9", or "-" for none.
func ranges(ps []int) string {
	if len(ps) == 0 {
		return "-"
	}
	slices.Sort(ps)
	return cluster.FormatPartitions(ps)
}

func list(xs []string) string {
	if len(xs) == 0 {
		return "-"
	}
	return strings.Join(xs, ",")
}
