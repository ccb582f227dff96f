// Command projector folds the ledger stream into its own Pebble directory and
// reports how far it is on the cluster's status subject; its directory
// serves audits, digests and checkpoints.
//
//	projector serve [flags]        run a projector
//	projector rebuild [flags]      fold the stream into a fresh or resumed projection and print its digest
//	projector digest [flags]       print the state digest of a projection at its applied sequence
//	projector checkpoint [flags]   take a Pebble checkpoint of a projection, with its sequence and digest
//	projector version              print the version and the commit of the build
package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/ledgerworks/ledger/cluster"
	"github.com/ledgerworks/ledger/internal/cli"
	"github.com/ledgerworks/ledger/ledger"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(cli.ExitStatus(err))
}

// program is the projector's command tree: run dispatches on it, its usage
// lists it, and the CLI test runs every command in it.
var program = &cli.Command{
	Name:    "projector",
	Summary: "a standalone projector of the ledger stream, and the tools of its Pebble directory",
	Commands: []cli.Command{
		{Name: "serve", Summary: "run a projector: fold the stream into --data and report on the cluster's status subject", Run: serve},
		{Name: "rebuild", Summary: "fold the stream into a fresh or resumed projection and print its digest", Run: rebuildCmd},
		{Name: "digest", Summary: "print the state digest of a projection at its applied sequence", Run: digestCmd},
		{Name: "checkpoint", Summary: "take a Pebble checkpoint of a projection, with its sequence and digest", Run: checkpointCmd},
		cli.VersionCommand(),
	},
	Help: `Exit status: 0 done (or a usage asked for with -h), 1 an error, 2 a wrong
command line (unknown command or flag, a bad or missing flag value).`,
}

// run runs the command line args as main does: it prints the usage, errors
// and results, and returns the error main maps to an exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return cli.Run(ctx, program, args, stdout, stderr)
}

// serve runs a projector until ctx is done.
func serve(ctx context.Context, call *cli.Call, args []string) error {
	fs := call.Flags()
	var cfg ledger.ProjectorConfig
	var parts, level string
	fs.StringVar(&cfg.NATSURL, "nats-url", "nats://127.0.0.1:4222", "NATS server holding the ledger stream")
	fs.StringVar(&cfg.DataDir, "data", "./projection", "Pebble directory of this projector")
	fs.StringVar(&cfg.Member, "member", "", "this projector's name in the cluster's status (default: host name and a hash of --data)")
	fs.StringVar(&parts, "partitions", "", `partitions to fold, e.g. "0-7" or "1,3" (default all)`)
	fs.StringVar(&level, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&cfg.HTTP, "http", "", `address of the operator's HTTP listener, e.g. "127.0.0.1:8080": /metrics, /healthz, /readyz (docs/OPERATIONS.md); none by default`)
	cfg.Credentials.RegisterFlags(fs, true)
	if err := call.Parse(args); err != nil {
		return err
	}
	var err error
	if cfg.Projector.Partitions, err = cluster.ParsePartitions(parts); err != nil {
		return cli.Usagef("--partitions: %v", err)
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return cli.Usagef("--log-level: %v", err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(call.Stderr, &slog.HandlerOptions{Level: lvl}))
	return ledger.RunProjector(ctx, cfg)
}
