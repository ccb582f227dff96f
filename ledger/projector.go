package ledger

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ledgerworks/ledger/projections"
)

// ProjectorConfig is everything a standalone projector needs.
type ProjectorConfig struct {
	NATSURL   string
	DataDir   string
	Store     projections.StoreOptions
	Projector projections.ProjectorOptions
	Service   ServiceOptions
	Logger    *slog.Logger
}

// RunProjector folds the stream into its own Pebble directory and serves the
// ledger's read-only queries until ctx is done.
func RunProjector(ctx context.Context, cfg ProjectorConfig) error {
	if cfg.NATSURL == "" || cfg.DataDir == "" {
		return fmt.Errorf("projector needs a NATS URL and a data directory")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	nc, err := nats.Connect(cfg.NATSURL, nats.Name("ledger-projector"), nats.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("connect to %s: %w", cfg.NATSURL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	store, err := projections.OpenStore(cfg.DataDir, cfg.Store)
	if err != nil {
		return err
	}
	defer store.Close()
	popts := cfg.Projector
	popts.Logger = cfg.Logger
	p, err := projections.NewProjector(js, store, popts)
	if err != nil {
		return err
	}
	sopts := cfg.Service
	sopts.Logger = cfg.Logger
	sopts.ReadOnly = true
	svc, err := StartService(nc, nil, p, sopts)
	if err != nil {
		return err
	}
	defer svc.Stop()
	cfg.Logger.Info("projector started", "nats", cfg.NATSURL, "data", cfg.DataDir, "applied_seq", p.Applied(), "filters", popts.Filters())
	runErr := p.Run(ctx)
	cfg.Logger.Info("projector stopped", "applied_seq", p.Applied())
	return runErr
}

// StreamLastSeq returns the stream's last sequence: what a projection must
// reach to be current.
func StreamLastSeq(ctx context.Context, js jetstream.JetStream, stream string) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.LastSeq, nil
}
