// Command projector folds the ledger stream into its own Pebble directory and
// serves the ledger's read-only queries (check, usage, quotas).
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
	"strconv"
	"strings"
	"syscall"

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
	fs.StringVar(&parts, "partitions", "", "comma-separated partitions to own (default all)")
	fs.StringVar(&level, "log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, p := range strings.Split(parts, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		n, err := strconv.Atoi(p)
		if err != nil {
			return fmt.Errorf("partition %q: %w", p, err)
		}
		cfg.Projector.Partitions = append(cfg.Projector.Partitions, n)
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return fmt.Errorf("log level: %w", err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	return ledger.RunProjector(ctx, cfg)
}
