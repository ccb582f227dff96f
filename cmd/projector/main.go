// Command projector folds the ledger stream into its own Pebble directory and
// reports how far it is on the cluster's status subject; its directory
// serves audits, digests and checkpoints.
//
//	projector [flags]              run a projector (the default)
//	projector rebuild [flags]      fold the stream into a fresh or resumed projection and print its digest
//	projector digest [flags]       print the state digest of a projection at its applied sequence
//	projector checkpoint [flags]   take a Pebble checkpoint of a projection, with its sequence and digest
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
			fmt.Fprintln(os.Stderr, "projector:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "rebuild":
			return rebuildCmd(ctx, args[1:], stdout, stderr)
		case "digest":
			return digestCmd(args[1:], stdout, stderr)
		case "checkpoint":
			return checkpointCmd(args[1:], stdout, stderr)
		}
	}
	return serve(ctx, args, stderr)
}

// serve runs a projector until ctx is done.
func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("projector", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg ledger.ProjectorConfig
	var parts, level string
	fs.StringVar(&cfg.NATSURL, "nats-url", "nats://127.0.0.1:4222", "NATS server holding the ledger stream")
	fs.StringVar(&cfg.DataDir, "data", "./projection", "Pebble directory of this projector")
	fs.StringVar(&cfg.Member, "member", "", "this projector's name in the cluster's status (default: host name and a hash of --data)")
	fs.StringVar(&parts, "partitions", "", `partitions to fold, e.g. "0-7" or "1,3" (default all)`)
	fs.StringVar(&level, "log-level", "info", "debug, info, warn or error")
	cfg.Credentials.RegisterFlags(fs, true)
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	if cfg.Projector.Partitions, err = cluster.ParsePartitions(parts); err != nil {
		return fmt.Errorf("--partitions: %w", err)
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return fmt.Errorf("log level: %w", err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	return ledger.RunProjector(ctx, cfg)
}
