// Command ledger runs the usage ledger: `ledger serve` starts an embedded
// NATS server with JetStream, the event stream, a projector and the
// request/reply service in one process.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/ledgerworks/ledger/cluster"
	"github.com/ledgerworks/ledger/ledger"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "ledger:", err)
		}
		os.Exit(exitStatus(err))
	}
}

const usage = `usage: ledger <command> [flags]

commands:
  serve    run the ledger (embedded NATS + JetStream, projector, service)
  status   who owns, stands by for and follows each partition, and how far each member is
  bench    measure the ledger against raw NATS baselines (docs/PERFORMANCE.md)
  health   container health check: a NATS server's /healthz or a member's readiness
  creds    add, revoke and list the users of a credentials file (serve --auth)

replay (read the stream only; docs/REPLAY.md):
  report   billing totals of a period, grouped, as CSV or JSON
  audit    recompute from the stream and compare with a live projection (exit 2 on differences)
  hash     chained content hash of a range of the stream
  at       an account's usage and check answers at a sequence or a time
  whatif   a period replayed against proposed quotas

Run "ledger <command> -h" for the flags of a command.`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stderr)
	case "status":
		return statusCmd(ctx, args[1:], stdout, stderr)
	case "bench":
		return bench(ctx, args[1:], stdout, stderr)
	case "report":
		return reportCmd(ctx, args[1:], stdout, stderr)
	case "audit":
		return auditCmd(ctx, args[1:], stdout, stderr)
	case "hash":
		return hashCmd(ctx, args[1:], stdout, stderr)
	case "at":
		return atCmd(ctx, args[1:], stdout, stderr)
	case "whatif":
		return whatIfCmd(ctx, args[1:], stdout, stderr)
	case "health":
		return healthCmd(ctx, args[1:], stdout, stderr)
	case "creds":
		return credsCmd(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	fmt.Fprintln(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
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
	fs.StringVar(&cfg.AuthFile, "auth", "", "credentials file (ledger creds add): the embedded server lets in only its users, with their roles' permissions, and reloads it when it changes or on SIGHUP")
	cfg.Credentials.RegisterFlags(fs, false)
	fs.StringVar(&cfg.TLS.CertFile, "tls-cert", "", "embedded server: its TLS certificate; with --nats-url: this process's client certificate")
	fs.StringVar(&cfg.TLS.KeyFile, "tls-key", "", "the key of --tls-cert")
	fs.StringVar(&cfg.TLS.CAFile, "tls-ca", "", "embedded server: require client certificates signed by this CA; with --nats-url: the CA of the servers' certificates")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	if cfg.NATSURL != "" {
		if cfg.AuthFile != "" {
			return errors.New("--auth is the embedded server's: an external cluster's servers carry the users (ledger creds config)")
		}
		// Against an external cluster the TLS flags are the client's.
		cfg.Credentials.CAFile, cfg.Credentials.CertFile, cfg.Credentials.KeyFile = cfg.TLS.CAFile, cfg.TLS.CertFile, cfg.TLS.KeyFile
		cfg.TLS = ledger.ServerTLS{}
	}
	if cfg.Assignment.Owns, err = cluster.ParsePartitions(owns); err != nil {
		return fmt.Errorf("--owns: %w", err)
	}
	if cfg.Assignment.Standby, err = cluster.ParsePartitions(standby); err != nil {
		return fmt.Errorf("--standby: %w", err)
	}
	if cfg.NATSURL == "" && cfg.Stream.Replicas > 1 {
		return fmt.Errorf("--replicas %d needs a cluster (--nats-url): the embedded server is one node", cfg.Stream.Replicas)
	}
	cfg.Durability = ledger.Durability(durability)
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return fmt.Errorf("log level: %w", err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
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
