// Package loadtest is the ledger's measuring stick: it starts a ledger (an
// embedded NATS server in a temporary directory, or an existing server),
// runs load scenarios against it and prints each figure beside a baseline
// measured by the same run, on the same server, just before the scenario:
//
//	bench <scenario> <figure>=<value> baseline_<figure>=<value> ratio=<value>
//
// The ratio is value/baseline, or baseline/value for latencies and memory,
// so that higher is always better. Lines starting with "#" are notes for
// people (setup, verification, extra figures); scripts read the bench lines.
package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"runtime/trace"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/ledgerworks/ledger/client"
	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/ledger"
	"github.com/ledgerworks/ledger/projections"
)

// Scenarios in the order "all" runs them. Rebuild comes before reserve: it
// folds the whole stream, and its figure should be the fold of usage, not of
// whatever decisions an earlier scenario left behind (the reserve scenario
// reports the cost of folding reservations itself).
var Scenarios = []string{"ingest", "check", "rebuild", "reserve", "scale", "memory"}

// Config says what to run. The zero value plus Out runs every scenario with
// defaults that finish in under three minutes on a 2-core machine.
type Config struct {
	// Scenario is one of Scenarios, a comma-separated list, or "all".
	Scenario string
	// Events is the number of usage events the ingest scenario publishes
	// (default 200,000); the raw baseline publishes as many messages.
	Events int
	// Accounts is the number of accounts of the ingest, check and rebuild
	// scenarios (default 1,000). An account is one user of one tenant,
	// counted by a quota split per user.
	Accounts int
	// Tenants is how many tenants the accounts are spread over (default 16).
	Tenants int
	// ReserveAccounts is the number of accounts of the reserve scenario
	// (default 10,000).
	ReserveAccounts int
	// ScaleAccounts is the account count of the scale scenario's value
	// (default 1,000,000); its baseline uses Accounts.
	ScaleAccounts int
	// ScaleEvents is how many events each phase of the scale scenario
	// ingests (default ScaleAccounts, so that every account is used).
	ScaleEvents int
	// Store sizes the ledger's projection store (zero: its defaults).
	Store projections.StoreOptions
	// Producer configures the Go client's producer of the ingest phases
	// (zero: the client's defaults).
	Producer client.ProducerOptions
	// Concurrency is the number of concurrent callers of the throughput
	// figures (default 64).
	Concurrency int
	// Duration bounds each timed phase (default 3 s); ingest phases are
	// bounded by Timeout instead.
	Duration time.Duration
	// Timeout bounds each ingest or rebuild phase (default 60 s): a phase
	// still running then reports what it did so far.
	Timeout time.Duration
	// NATSURL, when set, runs the ledger and the baselines against this
	// server instead of an embedded one.
	NATSURL string
	// Replicas of the ledger's stream and of the baselines' streams (with
	// NATSURL on a cluster; default 1).
	Replicas int
	// Durability of the embedded server (default periodic: see
	// docs/PERFORMANCE.md).
	Durability ledger.Durability
	// DataDir holds the embedded server's and the ledger's files (default a
	// temporary directory, removed at the end).
	DataDir string
	// CPUProfile and MemProfile, when set, are files the run writes pprof
	// profiles to; Trace an execution trace (go tool trace).
	CPUProfile, MemProfile, Trace string
	// Out receives the bench lines and notes.
	Out io.Writer
	// Logger receives the ledger's logs (default discarded).
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Scenario == "" {
		c.Scenario = "all"
	}
	if c.Events <= 0 {
		c.Events = 200_000
	}
	if c.Accounts <= 0 {
		c.Accounts = 1000
	}
	if c.Tenants <= 0 {
		c.Tenants = 16
	}
	if c.ReserveAccounts <= 0 {
		c.ReserveAccounts = 10_000
	}
	if c.ScaleAccounts <= 0 {
		c.ScaleAccounts = 1_000_000
	}
	if c.ScaleEvents <= 0 {
		c.ScaleEvents = c.ScaleAccounts
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 64
	}
	if c.Duration <= 0 {
		c.Duration = 3 * time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = 60 * time.Second
	}
	if c.Durability == "" {
		c.Durability = ledger.SyncPeriodic
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate checks the configuration.
func (c Config) Validate() error {
	c = c.withDefaults()
	if _, err := c.scenarios(); err != nil {
		return err
	}
	switch c.Durability {
	case ledger.SyncAlways, ledger.SyncPeriodic:
	default:
		return fmt.Errorf("durability %q: use %q or %q", c.Durability, ledger.SyncAlways, ledger.SyncPeriodic)
	}
	if c.Tenants > c.Accounts {
		return fmt.Errorf("tenants (%d) must not exceed accounts (%d)", c.Tenants, c.Accounts)
	}
	if c.Replicas > 1 && c.NATSURL == "" {
		return fmt.Errorf("replicas %d need a cluster (NATSURL): the embedded server is one node", c.Replicas)
	}
	return nil
}

func (c Config) scenarios() ([]string, error) {
	if c.Scenario == "all" {
		return Scenarios, nil
	}
	var out []string
	for _, s := range strings.Split(c.Scenario, ",") {
		s = strings.TrimSpace(s)
		found := false
		for _, k := range Scenarios {
			if s == k {
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown scenario %q (have %s, all)", s, strings.Join(Scenarios, ", "))
		}
		out = append(out, s)
	}
	return out, nil
}

// env is what every scenario shares: the ledger under test and connections
// to its server.
type env struct {
	cfg    Config
	out    io.Writer
	l      *ledger.Ledger
	nc     *nats.Conn // a client's TCP connection
	js     jetstream.JetStream
	cl     *client.Client
	prefix string // makes this run's tenants and subjects unique on a shared server

	pops map[string]*population // set up populations, by name
	raws map[string]*rawStream  // baseline streams; "events" is the ingest baseline's, reused by rebuild
	// scaled holds the scale scenario's two phases, shared with memory.
	scaled *[2]scaleResult
}

// Run runs the configured scenarios and prints their figures to cfg.Out.
func Run(ctx context.Context, cfg Config) (err error) {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg = cfg.withDefaults()
	names, _ := cfg.scenarios()
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if cfg.Trace != "" {
		f, err := os.Create(cfg.Trace)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := trace.Start(f); err != nil {
			return err
		}
		defer trace.Stop()
	}
	dir := cfg.DataDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "ledger-bench-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	e := &env{cfg: cfg, out: cfg.Out, prefix: "b" + strings.ToLower(nuid.Next()[16:]), pops: map[string]*population{}, raws: map[string]*rawStream{}}
	e.l, err = ledger.Start(ctx, ledger.Config{
		DataDir: dir, Listen: "127.0.0.1:0", NATSURL: cfg.NATSURL, Durability: cfg.Durability, Logger: cfg.Logger, Store: cfg.Store,
		Stream: ledger.StreamOptions{Replicas: cfg.Replicas},
	})
	if err != nil {
		return err
	}
	defer e.l.Close()
	e.nc, err = nats.Connect(e.l.ClientURL(), nats.Name("ledger-bench"))
	if err != nil {
		return err
	}
	defer e.nc.Close()
	if e.js, err = jetstream.New(e.nc); err != nil {
		return err
	}
	if e.cl, err = client.New(e.nc, client.WithTimeout(10*time.Second)); err != nil {
		return err
	}
	where := "embedded server in " + dir
	if cfg.NATSURL != "" {
		where = fmt.Sprintf("server %s, %d replicas", cfg.NATSURL, max(cfg.Replicas, 1))
	}
	e.notef("ledger bench: %s, durability %s, GOMAXPROCS %d, %s, cgo %s, run prefix %s", where, cfg.Durability, runtime.GOMAXPROCS(0), runtime.Version(), cgoSetting(), e.prefix)
	if err := e.waitCaughtUp(ctx, cfg.Timeout); err != nil {
		return err
	}
	defer e.cleanup()
	for _, name := range names {
		start := time.Now()
		var err error
		switch name {
		case "ingest":
			err = e.ingest(ctx)
		case "check":
			err = e.check(ctx)
		case "reserve":
			err = e.reserve(ctx)
		case "rebuild":
			err = e.rebuild(ctx)
		case "scale", "memory":
			err = e.scale(ctx, name)
		}
		if err != nil {
			return fmt.Errorf("scenario %s: %w", name, err)
		}
		e.notef("%s took %s", name, time.Since(start).Round(time.Millisecond))
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if cfg.MemProfile != "" {
		f, err := os.Create(cfg.MemProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		runtime.GC()
		if err := pprof.WriteHeapProfile(f); err != nil {
			return err
		}
	}
	return nil
}

func (e *env) notef(format string, a ...any) {
	fmt.Fprintf(e.out, "# "+format+"\n", a...)
}

// report prints one figure. lowerIsBetter figures (latencies, memory) get
// the ratio baseline/value, the others value/baseline.
func (e *env) report(scenario, figure string, value, baseline float64, lowerIsBetter bool) {
	ratio := 0.0
	switch {
	case lowerIsBetter && value > 0:
		ratio = baseline / value
	case !lowerIsBetter && baseline > 0:
		ratio = value / baseline
	}
	fmt.Fprintf(e.out, "bench %s %s=%s baseline_%s=%s ratio=%.2f\n", scenario, figure, num(value), figure, num(baseline), ratio)
}

func num(v float64) string {
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

// waitCaughtUp waits until the ledger's projection covers the whole stream.
func (e *env) waitCaughtUp(ctx context.Context, within time.Duration) error {
	last, err := ledger.StreamLastSeq(ctx, e.js, events.StreamName)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	return e.l.Projector().WaitApplied(ctx, last)
}

func (e *env) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, r := range e.raws {
		e.js.DeleteStream(ctx, r.name)
	}
}

// projector returns the ledger's in-process projector.
func (e *env) projector() *projections.Projector { return e.l.Projector() }

var errTimeout = errors.New("phase timed out")

// cgoSetting reports whether the binary was built with cgo ("1", "0", or
// "unknown"): with cgo, Pebble allocates its block buffers with C.calloc,
// which changes the cold-read and ingest figures (docs/PERFORMANCE.md).
func cgoSetting() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "CGO_ENABLED" {
				return s.Value
			}
		}
	}
	return "unknown"
}
