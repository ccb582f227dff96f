package main

import (
	"context"
	"log/slog"

	"github.com/ledgerworks/ledger/internal/cli"
	"github.com/ledgerworks/ledger/ledger"
	"github.com/ledgerworks/ledger/loadtest"
)

// bench runs the load scenarios of package loadtest and prints one line per
// figure: bench <scenario> <figure>=<value> baseline_<figure>=<value> ratio=<value>.
func bench(ctx context.Context, call *cli.Call, args []string) error {
	fs := call.Flags()
	var cfg loadtest.Config
	var durability, level string
	fs.StringVar(&cfg.Scenario, "scenario", "all", "scenario(s) to run, comma-separated: ingest, check, reserve, rebuild, scale, memory, or all")
	fs.IntVar(&cfg.Events, "events", 200_000, "usage events of the ingest scenario (and raw messages of its baseline)")
	fs.IntVar(&cfg.Accounts, "accounts", 1000, "accounts of the ingest, check and rebuild scenarios, and of the scale baseline")
	fs.IntVar(&cfg.Tenants, "tenants", 16, "tenants the accounts are spread over (an account is one user of one tenant)")
	fs.IntVar(&cfg.ReserveAccounts, "reserve-accounts", 10_000, "accounts of the reserve scenario")
	fs.IntVar(&cfg.ScaleAccounts, "scale-accounts", 1_000_000, "accounts of the scale scenario's value")
	fs.IntVar(&cfg.ScaleEvents, "scale-events", 0, "events each scale phase ingests (default: scale-accounts)")
	fs.IntVar(&cfg.Concurrency, "concurrency", 64, "concurrent callers of the throughput figures")
	fs.DurationVar(&cfg.Duration, "duration", 0, "length of each timed phase (default 3s)")
	fs.DurationVar(&cfg.Timeout, "timeout", 0, "bound of each ingest or rebuild phase (default 60s)")
	fs.DurationVar(&cfg.Producer.Linger, "linger", 0, "producer linger of the ingest phases (default: the client's)")
	fs.IntVar(&cfg.Producer.MaxBatch, "max-batch", 0, "producer batch size of the ingest phases (default: the client's)")
	var cacheMB int
	fs.IntVar(&cacheMB, "cache-mb", 0, "Pebble block cache of the ledger's projection, MiB (default: the store's)")
	fs.IntVar(&cfg.Store.CounterCacheEntries, "counter-cache", 0, "limits whose counters the projection keeps in memory (default: the store's)")
	fs.StringVar(&cfg.NATSURL, "nats-url", "", "run against this NATS server (JetStream enabled) instead of an embedded one")
	fs.IntVar(&cfg.Replicas, "replicas", 0, "replicas of the ledger's and the baselines' streams, with --nats-url on a cluster (default 1)")
	fs.StringVar(&durability, "durability", string(ledger.SyncPeriodic), "embedded server fsync: periodic or always")
	fs.StringVar(&cfg.DataDir, "data", "", "data directory (default: a temporary directory, removed afterwards)")
	fs.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write a CPU profile of the run to this file")
	fs.StringVar(&cfg.MemProfile, "memprofile", "", "write a heap profile at the end of the run to this file")
	fs.StringVar(&cfg.Trace, "trace", "", "write an execution trace of the run to this file (go tool trace)")
	fs.StringVar(&level, "log-level", "error", "ledger log level: debug, info, warn or error")
	if err := call.Parse(args); err != nil {
		return err
	}
	cfg.Durability = ledger.Durability(durability)
	cfg.Store.CacheBytes = int64(cacheMB) << 20
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return cli.Usagef("--log-level: %v", err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(call.Stderr, &slog.HandlerOptions{Level: lvl}))
	cfg.Out = call.Stdout
	return loadtest.Run(ctx, cfg)
}
