package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ledgerworks/ledger/api"
	"github.com/ledgerworks/ledger/auth"
	"github.com/ledgerworks/ledger/cluster"
	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/metrics"
	"github.com/ledgerworks/ledger/projections"
)

// ProjectorConfig is everything a standalone projector needs.
type ProjectorConfig struct {
	NATSURL string
	// Credentials are how the projector signs in (package auth: a
	// projector role's nkey on a cluster with authentication).
	Credentials auth.Credentials
	DataDir     string
	// Member names the projector in the cluster's status (default: the
	// host name and a hash of DataDir).
	Member    string
	Store     projections.StoreOptions
	Projector projections.ProjectorOptions
	// HTTP is the address of the operator's HTTP listener (/metrics,
	// /healthz, /readyz, as a ledger's); empty: none. ReadyMaxLag and
	// Dashboard are as in Config.
	HTTP        string
	ReadyMaxLag uint64
	Dashboard   http.Handler
	// OnHTTP, when set, is called with the address the HTTP listener is
	// bound to once it serves (HTTP may ask for port 0).
	OnHTTP func(addr string)
	Logger *slog.Logger
}

// RunProjector folds the stream (Projector.Partitions of it, or all) into
// its own Pebble directory until ctx is done. It answers no tenant's
// requests, which only a partition's owner answers, but says how far it is
// on api.SubjectClusterStatus; its directory serves audits, digests and
// checkpoints (projector digest, ledger audit --projection).
func RunProjector(ctx context.Context, cfg ProjectorConfig) error {
	if cfg.NATSURL == "" || cfg.DataDir == "" {
		return fmt.Errorf("projector needs a NATS URL and a data directory")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Member == "" {
		cfg.Member = DefaultMemberName(cfg.DataDir)
	}
	nc, err := cfg.Credentials.Connect(cfg.NATSURL, nats.Name("ledger-projector"), nats.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("connect to %s: %w", cfg.NATSURL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	stream, err := waitForStream(ctx, js, cfg.Logger)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while waiting: not a failure
		}
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
	parts := popts.Partitions
	if len(parts) == 0 {
		parts = cluster.All()
	}
	followed := make([]api.PartitionStatus, len(parts))
	for i, part := range parts {
		followed[i] = api.PartitionStatus{Partition: part, State: "follower"}
	}
	status, err := startStatus(ctx, nc, stream, p, cfg.Member, "projector", func() []api.PartitionStatus { return followed })
	if err != nil {
		return err
	}
	defer status.stop()
	if cfg.HTTP != "" {
		m := metrics.New()
		if err := m.Watch(metrics.Sources{
			Projector: p, Store: store, Conn: nc, Partitions: func() []api.PartitionStatus { return followed },
			Stream: func(ctx context.Context) (metrics.StreamState, error) {
				return streamState(ctx, js, stream, parts, p.Applied())
			},
		}); err != nil {
			return err
		}
		if cfg.ReadyMaxLag == 0 {
			cfg.ReadyMaxLag = DefaultReadyMaxLag
		}
		ready := &readiness{js: js, stream: stream, proj: p, parts: parts, maxLag: cfg.ReadyMaxLag}
		srv, err := startHTTP(cfg.HTTP, m, ready, cfg.Dashboard, cfg.Logger)
		if err != nil {
			return err
		}
		defer srv.close() // deferred last, so run first: before the store closes
		if cfg.OnHTTP != nil {
			cfg.OnHTTP(srv.addr())
		}
	}
	cfg.Logger.Info("projector started", "nats", cfg.NATSURL, "data", cfg.DataDir, "member", cfg.Member, "applied_seq", p.Applied(), "filters", popts.Filters())
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

// LastSeqOf returns the last sequence of stream among the messages on the
// filter subjects (0 when there are none): what a projection of those
// filters must have folded to be current. A projection of some partitions
// never folds the others' messages, so the stream's own last sequence can
// be out of its reach.
func LastSeqOf(ctx context.Context, stream jetstream.Stream, filters []string) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var last uint64
	for _, f := range filters {
		m, err := stream.GetLastMsgForSubject(ctx, f)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return 0, err
		}
		last = max(last, m.Sequence)
	}
	return last, nil
}

// TenantFilter is the filter subject of all of a tenant's events.
func TenantFilter(tenant string) string {
	return events.SubjectPrefix + "." + strconv.Itoa(events.Partition(tenant)) + "." + tenant + ".>"
}

// waitForStream returns once the ledger stream exists: a projector may
// start before any ledger has created it (all containers of a cluster
// start at once), and then waits instead of failing.
func waitForStream(ctx context.Context, js jetstream.JetStream, log *slog.Logger) (jetstream.Stream, error) {
	for logged := false; ; {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		stream, err := js.Stream(sctx, events.StreamName)
		cancel()
		switch {
		case err == nil:
			return ReadFromLeader(js, stream), nil
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case !errors.Is(err, jetstream.ErrStreamNotFound) && !transient(err):
			return nil, fmt.Errorf("ledger stream: %w", err)
		case !logged:
			log.Info("waiting for the ledger stream", "stream", events.StreamName, "err", err)
			logged = true
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
