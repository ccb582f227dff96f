package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ledgerworks/ledger/api"
	"github.com/ledgerworks/ledger/auth"
	"github.com/ledgerworks/ledger/cluster"
	"github.com/ledgerworks/ledger/internal/cli"
)

const healthHelp = `Either:
  ledger health --http URL [--timeout 2s]
      GET URL; healthy on a 2xx answer
      (a NATS server: http://127.0.0.1:8222/healthz)
  ledger health --nats-url URLS --member NAME [--timeout 2s]
      ask member NAME on ledger.cluster.status.NAME; healthy when it answers
      and says it is ready (its projection has caught up with the stream)

Exit 0 when healthy, 1 with one line on stderr saying why not, 2 when the
command line is wrong. Meant for container health checks (the images have
no shell and no curl).`

// healthCmd is `ledger health`: a health check for a container with nothing
// but our binaries in it.
func healthCmd(ctx context.Context, call *cli.Call, args []string) error {
	fs := call.Flags()
	var httpURL, natsURL, member string
	var timeout time.Duration
	fs.StringVar(&httpURL, "http", "", "URL to GET (healthy on 2xx)")
	fs.StringVar(&natsURL, "nats-url", "", "comma-separated NATS server URLs to ask a member on")
	fs.StringVar(&member, "member", "", "name of the member (ledger or projector) to ask for its status")
	fs.DurationVar(&timeout, "timeout", 2*time.Second, "how long to wait for a connection and for each answer")
	var cred auth.Credentials
	cred.RegisterFlags(fs, true)
	if err := call.Parse(args); err != nil {
		return err
	}
	if timeout <= 0 {
		return cli.Usagef("--timeout must be positive")
	}
	switch {
	case httpURL != "" && (natsURL != "" || member != ""):
		return cli.Usagef("give either --http or --nats-url with --member, not both")
	case httpURL != "":
		return httpHealth(ctx, httpURL, timeout, call.Stdout)
	case natsURL != "" && member != "":
		return memberHealth(ctx, cred, natsURL, member, timeout, call.Stdout)
	case natsURL != "" || member != "":
		return cli.Usagef("--nats-url and --member go together")
	}
	return cli.Usagef("give --http URL, or --nats-url URLS with --member NAME")
}

// httpHealth GETs url: healthy on a 2xx status.
func httpHealth(ctx context.Context, url string, timeout time.Duration, stdout io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("health: %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	text := oneLine(string(body))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("health: %s: %s: %s", url, resp.Status, text)
	}
	fmt.Fprintf(stdout, "healthy: %s: %s %s\n", url, resp.Status, text)
	return nil
}

// memberHealth asks member for its api.MemberStatus: healthy when it answers
// and is ready.
func memberHealth(ctx context.Context, cred auth.Credentials, urls, member string, timeout time.Duration, stdout io.Writer) error {
	nc, err := cred.Connect(urls,
		nats.Name("ledger health "+member),
		nats.Timeout(timeout),
		nats.NoReconnect(),
	)
	if err != nil {
		return fmt.Errorf("health: member %s: connect to %s: %w", member, urls, err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	subject := api.MemberStatusSubject(member)
	msg, err := nc.RequestWithContext(ctx, subject, nil)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return fmt.Errorf("health: member %s: nobody answers on %s (not running, or not serving its status yet)", member, subject)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
		return fmt.Errorf("health: member %s: no answer on %s within %s", member, subject, timeout)
	case err != nil:
		return fmt.Errorf("health: member %s: %s: %w", member, subject, err)
	}
	if code := msg.Header.Get("Nats-Service-Error-Code"); code != "" {
		return fmt.Errorf("health: member %s: error %s: %s", member, code, msg.Header.Get("Nats-Service-Error"))
	}
	var st api.MemberStatus
	if err := json.Unmarshal(msg.Data, &st); err != nil {
		return fmt.Errorf("health: member %s: status reply %q: %w", member, oneLine(string(msg.Data)), err)
	}
	if st.Member != "" && st.Member != member {
		return fmt.Errorf("health: asked member %s, %s answered", member, st.Member)
	}
	if !st.Ready {
		return fmt.Errorf("health: member %s (%s) not ready: applied seq %d of %d (lag %d)", member, st.Role, st.AppliedSeq, st.StreamSeq, st.Lag)
	}
	fmt.Fprintf(stdout, "healthy: member %s (%s) ready: applied seq %d of %d (lag %d), %s\n",
		member, st.Role, st.AppliedSeq, st.StreamSeq, st.Lag, partitionSummary(st.Partitions))
	return nil
}

// partitionSummary says which partitions a member holds in which state, in
// ranges: "owner 0-7, standby 8-15".
func partitionSummary(ps []api.PartitionStatus) string {
	if len(ps) == 0 {
		return "no partitions"
	}
	var order []string
	by := map[string][]int{}
	for _, p := range ps {
		if _, ok := by[p.State]; !ok {
			order = append(order, p.State)
		}
		by[p.State] = append(by[p.State], p.Partition)
	}
	var parts []string
	for _, state := range order {
		ns := by[state]
		slices.Sort(ns)
		parts = append(parts, state+" "+cluster.FormatPartitions(ns))
	}
	return strings.Join(parts, ", ")
}

// oneLine squeezes a reply body into one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
