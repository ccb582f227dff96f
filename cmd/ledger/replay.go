package main

// The auditor's commands read the stream only: report, audit, hash, at and
// whatif. Their logic is in package replay; this file wires flags to it.

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ledgerworks/ledger/auth"
	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/internal/cli"
	"github.com/ledgerworks/ledger/replay"
)

// streamFlags are the flags of every command that reads the stream.
type streamFlags struct {
	url, stream, partitions string
	cred                    auth.Credentials
	batch                   int
	progress                replay.ProgressFlags
}

func (f *streamFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.url, "nats-url", "nats://127.0.0.1:4222", "NATS server holding the ledger stream (read access is enough)")
	f.cred.RegisterFlags(fs, true)
	fs.StringVar(&f.stream, "stream", "", "ledger stream (default LEDGER)")
	fs.StringVar(&f.partitions, "partitions", "", "comma-separated partitions to read (default all)")
	fs.IntVar(&f.batch, "batch", 0, "messages per direct-get batch (default 10000)")
	f.progress.Register(fs)
}

// open connects and returns the stream source; the caller closes nc.
func (f *streamFlags) open() (*nats.Conn, *replay.StreamSource, error) {
	parts, err := replay.ParsePartitions(f.partitions)
	if err != nil {
		return nil, nil, cli.Usagef("--partitions: %v", err)
	}
	nc, js, err := replay.Dial(replay.DialOptions{URL: f.url, Credentials: f.cred, Name: "ledger-replay"})
	if err != nil {
		return nil, nil, err
	}
	src, err := replay.NewStreamSource(js, replay.StreamOptions{Stream: f.stream, Partitions: parts, Batch: f.batch})
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, src, nil
}

// progressOn is the command's progress display (nil: none).
func (f *streamFlags) progressOn(call *cli.Call, label string) *replay.Progress {
	return f.progress.New(call.Stdout, call.Stderr, label)
}

// periodFlags are --from, --to and --tz.
type periodFlags struct {
	from, to, tz string
}

func (p *periodFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.from, "from", "", "start of the period, included: RFC 3339, or a local date[Thh:mm[:ss]] in --tz")
	fs.StringVar(&p.to, "to", "", "end of the period, excluded: RFC 3339, or a local date[Thh:mm[:ss]] in --tz")
	fs.StringVar(&p.tz, "tz", "UTC", "time zone of local times, of calendar groups and of the output (IANA name)")
}

func (p *periodFlags) parse() (from, to time.Time, loc *time.Location, err error) {
	if p.from == "" || p.to == "" {
		return from, to, nil, cli.Usagef("--from and --to are required")
	}
	if loc, err = events.LoadZone(p.tz); err != nil {
		return from, to, nil, cli.Usagef("--tz: %v", err)
	}
	if from, err = replay.ParseTime(p.from, loc); err != nil {
		return from, to, nil, cli.Usagef("--from: %v", err)
	}
	if to, err = replay.ParseTime(p.to, loc); err != nil {
		return from, to, nil, cli.Usagef("--to: %v", err)
	}
	return from, to, loc, nil
}

// writeOut writes to --out (stdout when empty or "-") and closes it.
func writeOut(path string, stdout io.Writer, write func(io.Writer) error) error {
	if path == "" || path == "-" {
		return write(stdout)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = write(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// hash: the chained content hash of a range of the stream.
func hashCmd(ctx context.Context, call *cli.Call, args []string) error {
	fs := call.Flags()
	var sf streamFlags
	sf.register(fs)
	var from, to uint64
	var format string
	fs.Uint64Var(&from, "from-seq", 1, "first stream sequence")
	fs.Uint64Var(&to, "to-seq", 0, "last stream sequence (default: the last when the command starts)")
	fs.StringVar(&format, "format", "text", "text or json")
	if err := call.Parse(args); err != nil {
		return err
	}
	nc, src, err := sf.open()
	if err != nil {
		return err
	}
	defer nc.Close()
	res, err := replay.HashRange(ctx, src, replay.Range{From: from, To: to}, sf.progressOn(call, "hash"))
	if err != nil {
		return err
	}
	if format == "json" {
		return writeJSON(call.Stdout, res)
	}
	fmt.Fprintf(call.Stdout, "sequences %d-%d: %d messages, %d events\nchained sha256 %s\n", res.FromSeq, res.ThroughSeq, res.Messages, res.Events, res.ChainedSHA256)
	return nil
}

// checkList collects repeated --check flags.
type checkList []replay.Check

func (c *checkList) String() string { return fmt.Sprint(len(*c)) }
func (c *checkList) Set(s string) error {
	ch, err := replay.ParseCheck(s)
	if err != nil {
		return err
	}
	*c = append(*c, ch)
	return nil
}

// at: an account's usage and check answers at a sequence or a time.
func atCmd(ctx context.Context, call *cli.Call, args []string) error {
	fs := call.Flags()
	var sf streamFlags
	sf.register(fs)
	var tenant, at, now, tz, ckpt, format string
	var seq uint64
	var checks checkList
	fs.StringVar(&tenant, "tenant", "", "the tenant (account)")
	fs.Uint64Var(&seq, "seq", 0, "stand right after this stream sequence")
	fs.StringVar(&at, "time", "", "or: stand right after the last message stored at or before this time")
	fs.StringVar(&now, "now", "", "the clock checks are evaluated at (default: the stream time of the last message folded with --seq, the --time itself otherwise)")
	fs.StringVar(&tz, "tz", "UTC", "time zone of local times given")
	fs.StringVar(&ckpt, "checkpoint", "", "start from this checkpoint (made by projector checkpoint) instead of sequence 1")
	fs.Var(&checks, "check", `a call to evaluate, as JSON: {"dims":{"user":"ana","model":"gpt-4o"},"groups":["staff"],"request":{"tokens":1000}} (repeatable)`)
	fs.StringVar(&format, "format", "json", "json or text")
	if err := call.Parse(args); err != nil {
		return err
	}
	loc, err := events.LoadZone(tz)
	if err != nil {
		return cli.Usagef("--tz: %v", err)
	}
	o := replay.AtOptions{Seq: seq, Checkpoint: ckpt}
	if (seq == 0) == (at == "") {
		return cli.Usagef("give one of --seq and --time")
	}
	if at != "" {
		if o.Time, err = replay.ParseTime(at, loc); err != nil {
			return cli.Usagef("--time: %v", err)
		}
	}
	if now != "" {
		if o.Now, err = replay.ParseTime(now, loc); err != nil {
			return cli.Usagef("--now: %v", err)
		}
	}
	nc, src, err := sf.open()
	if err != nil {
		return err
	}
	defer nc.Close()
	o.Progress = sf.progressOn(call, "fold")
	snap, err := replay.At(ctx, src, tenant, checks, o)
	if err != nil {
		return err
	}
	stdout := call.Stdout
	if format == "json" {
		return writeJSON(stdout, snap)
	}
	fmt.Fprintf(stdout, "tenant %s at sequence %d (stored %s), evaluated at %s\n", snap.Tenant, snap.Seq, snap.SeqTime.Format(time.RFC3339Nano), snap.Now.Format(time.RFC3339Nano))
	fmt.Fprintf(stdout, "totals: %s\nquotas: %s\nopen reservations: %d, active workflows: %d\n", pairsOf(snap.Totals), strings.Join(snap.Quotas, ", "), len(snap.Reservations), len(snap.Workflows))
	for _, c := range snap.Checks {
		verdict := "allowed"
		if !c.Reply.Allowed {
			verdict = fmt.Sprintf("denied, %s (%s): %s", c.Reply.Code, c.Reply.Reason, c.Reply.Message)
		}
		if c.Reply.Warning {
			verdict += ", warning"
		}
		b, _ := json.Marshal(c.Check)
		fmt.Fprintf(stdout, "check %s: %s\n", b, verdict)
	}
	return nil
}

func pairsOf[K ~string](m map[K]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, string(k))
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s=%d", k, m[K(k)])
	}
	return b.String()
}

// whatif: a period replayed against proposed quotas.
func whatIfCmd(ctx context.Context, call *cli.Call, args []string) error {
	fs := call.Flags()
	var sf streamFlags
	sf.register(fs)
	var pf periodFlags
	pf.register(fs)
	var quotas, format, out string
	var through uint64
	var countDenied bool
	fs.StringVar(&quotas, "quotas", "", `JSON file of proposed quotas per tenant: {"acme":[{"id":"daily","limits":[...]}]}`)
	fs.BoolVar(&countDenied, "count-denied", false, "keep counting calls the proposal denies (default: a denied call does not happen)")
	fs.Uint64Var(&through, "through-seq", 0, "last stream sequence read (default: the last when the command starts)")
	fs.StringVar(&format, "format", "text", "text or json")
	fs.StringVar(&out, "out", "", "write to this file instead of stdout")
	if err := call.Parse(args); err != nil {
		return err
	}
	from, to, loc, err := pf.parse()
	if err != nil {
		return err
	}
	if quotas == "" {
		return cli.Usagef("--quotas FILE is required")
	}
	f, err := os.Open(quotas)
	if err != nil {
		return fmt.Errorf("--quotas: %w", err)
	}
	prop, err := replay.ReadProposal(f)
	f.Close()
	if err != nil {
		return err
	}
	nc, src, err := sf.open()
	if err != nil {
		return err
	}
	defer nc.Close()
	o := replay.WhatIfOptions{From: from, To: to, Location: loc, Through: through, CountDenied: countDenied}
	o.Progress = sf.progressOn(call, "whatif")
	rep, err := replay.WhatIf(ctx, src, prop, o)
	if err != nil {
		return err
	}
	if format == "json" {
		return writeOut(out, call.Stdout, rep.WriteJSON)
	}
	return writeOut(out, call.Stdout, rep.WriteText)
}
