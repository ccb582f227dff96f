// Command ledger runs the usage ledger: `ledger serve` starts an embedded
// NATS server with JetStream, the event stream, a projector and the
// request/reply service in one process.
package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/ledgerworks/ledger/cluster"
	"github.com/ledgerworks/ledger/internal/cli"
	"github.com/ledgerworks/ledger/ledger"
	"github.com/ledgerworks/ledger/replay"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitStatus(err))
}

// Exit statuses of the ledger command (the usage text says them too).
const (
	exitError       = cli.StatusError // an error: the command could not do what was asked
	exitDifferences = 3               // audit ran and found differences: "checked and wrong", not "could not check"
)

// exitStatus maps run's error to the process exit status, in one place.
func exitStatus(err error) int {
	if errors.Is(err, replay.ErrDifferences) {
		return exitDifferences
	}
	return cli.ExitStatus(err)
}

// program is the ledger's command tree: run dispatches on it, its usage
// lists it, and the CLI test runs every command in it.
var program = &cli.Command{
	Name:    "ledger",
	Summary: "an event-sourced usage ledger on NATS JetStream",
	Commands: []cli.Command{
		{Name: "serve", Summary: "run the ledger (embedded NATS + JetStream, projector, service)", Run: serve},
		{Name: "status", Summary: "who owns, stands by for and follows each partition, and how far each member is", Run: statusCmd},
		{Name: "bench", Summary: "measure the ledger against raw NATS baselines (docs/PERFORMANCE.md)", Run: bench},
		{Name: "health", Summary: "container health check: a NATS server's /healthz or a member's readiness", Help: healthHelp, Run: healthCmd},
		{Name: "creds", Summary: "add, revoke and list the users of a credentials file (serve --auth)", Help: credsHelp, Commands: credsCommands},
		cli.VersionCommand(),
		{Name: "report", Group: "replay (read the stream only; docs/REPLAY.md)", Summary: "billing totals of a period, grouped, as CSV or JSON", Run: reportCmd},
		{Name: "audit", Summary: "recompute from the stream and compare with a live projection (exit 3 on differences)", Help: auditHelp, Run: auditCmd},
		{Name: "hash", Summary: "chained content hash of a range of the stream", Run: hashCmd},
		{Name: "at", Summary: "an account's usage and check answers at a sequence or a time", Run: atCmd},
		{Name: "whatif", Summary: "a period replayed against proposed quotas", Run: whatIfCmd},
	},
	Help: `Exit status: 0 done (or a usage asked for with -h), 1 an error, 2 a wrong
command line (unknown command or flag, a bad or missing flag value), 3 an
audit that found differences.`,
}

// run runs the command line args as main does: it prints the usage, errors
// and results, and returns the error main maps to an exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return cli.Run(ctx, program, args, stdout, stderr)
}

func serve(ctx context.Context, call *cli.Call, args []string) error {
	fs := call.Flags()
	var cfg ledger.Config
	var durability, level, owns, standby string
	fs.StringVar(&cfg.DataDir, "data", "./data", "data directory (JetStream files and the projection)")
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:4222", "client address of the embedded NATS server")
	fs.StringVar(&cfg.NATSURL, "nats-url", "", "use this NATS server instead of embedding one")
	fs.StringVar(&durability, "durability", string(ledger.SyncAlways), "embedded server fsync: always (every write) or periodic (every 2 minutes)")
	fs.DurationVar(&cfg.Service.MaxSkew, "max-skew", 0, "how far an event's time may be from the ledger clock (default 5m)")
	fs.IntVar(&cfg.Stream.Replicas, "replicas", 0, "replicas of the stream and the lease bucket: 3 on a 3-node cluster (default 1 for a new stream; an existing one keeps its count)")
	fs.StringVar(&cfg.Member, "member", "", "this process's name in the cluster: unique, the same across restarts (default: host name and a hash of --data)")
	fs.StringVar(&owns, "owns", "", `partitions to own, e.g. "0-7" (default: all, unless --standby is given)`)
	fs.StringVar(&standby, "standby", "", `partitions to stand by for, e.g. "8-15": folded, taken over when their owner's lease lapses`)
	fs.DurationVar(&cfg.LeaseTTL, "lease-ttl", 0, "how long an owner's lease outlives its last renewal; failover takes about 1-1.5x this (default 2s)")
	fs.StringVar(&level, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&cfg.AuthFile, "auth", "", "credentials file (ledger creds add): the embedded server lets in only its users, with their roles' permissions, and reloads it when it changes or on SIGHUP; the dashboard (--http) signs in its admins and auditors. With --nats-url it guards the dashboard only (the servers carry the NATS users: ledger creds config)")
	cfg.Credentials.RegisterFlags(fs, false)
	fs.StringVar(&cfg.TLS.CertFile, "tls-cert", "", "embedded server: its TLS certificate; with --nats-url: this process's client certificate")
	fs.StringVar(&cfg.TLS.KeyFile, "tls-key", "", "the key of --tls-cert")
	fs.StringVar(&cfg.TLS.CAFile, "tls-ca", "", "embedded server: require client certificates signed by this CA; with --nats-url: the CA of the servers' certificates")
	fs.StringVar(&cfg.HTTP, "http", "", `address of the operator's HTTP listener, e.g. "127.0.0.1:8080": the live dashboard at /, /metrics, /healthz, /readyz (docs/OPERATIONS.md); none by default`)
	if err := call.Parse(args); err != nil {
		return err
	}
	var err error
	if cfg.NATSURL != "" {
		// Against an external cluster the TLS flags are the client's.
		cfg.Credentials.CAFile, cfg.Credentials.CertFile, cfg.Credentials.KeyFile = cfg.TLS.CAFile, cfg.TLS.CertFile, cfg.TLS.KeyFile
		cfg.TLS = ledger.ServerTLS{}
	}
	if cfg.Assignment.Owns, err = cluster.ParsePartitions(owns); err != nil {
		return cli.Usagef("--owns: %v", err)
	}
	if cfg.Assignment.Standby, err = cluster.ParsePartitions(standby); err != nil {
		return cli.Usagef("--standby: %v", err)
	}
	if cfg.NATSURL == "" && cfg.Stream.Replicas > 1 {
		return cli.Usagef("--replicas %d needs a cluster (--nats-url): the embedded server is one node", cfg.Stream.Replicas)
	}
	cfg.Durability = ledger.Durability(durability)
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return cli.Usagef("--log-level: %v", err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(call.Stderr, &slog.HandlerOptions{Level: lvl}))
	l, err := ledger.Start(ctx, cfg)
	if err != nil {
		return err
	}
	hup := make(chan os.Signal, 1)
	if cfg.AuthFile != "" {
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
	}
	for {
		select {
		case <-hup:
			if err := l.ReloadAuth(); err != nil {
				cfg.Logger.Error("credentials file not reloaded: the server keeps its users", "err", err)
			}
			continue
		case <-ctx.Done():
			cfg.Logger.Info("shutting down")
		case <-l.Done():
		}
		return l.Close()
	}
}
