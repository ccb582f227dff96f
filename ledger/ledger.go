package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ledgerworks/ledger/projections"
)

// Config is everything `ledger serve` needs. The zero value plus a DataDir
// runs the embedded default.
type Config struct {
	// DataDir holds the embedded server's JetStream files (DataDir/jetstream)
	// and the projection (DataDir/projection).
	DataDir string
	// Listen is the embedded server's client address.
	Listen string
	// NATSURL, when set, uses an existing NATS server instead of embedding one.
	NATSURL    string
	Durability Durability
	Stream     StreamOptions
	Store      projections.StoreOptions
	Projector  projections.ProjectorOptions
	Service    ServiceOptions
	// ExpirySweep is how often reservations past their TTL are expired
	// (default 250 ms).
	ExpirySweep time.Duration
	Logger      *slog.Logger
}

// Ledger is a running ledger: optionally an embedded NATS server, the stream,
// a projector and the request/reply service, in one process.
type Ledger struct {
	cfg       Config
	srv       *server.Server
	nc        *nats.Conn
	store     *projections.Store
	projector *projections.Projector
	service   *Service
	cancel    context.CancelFunc
	done      chan struct{}
	runErr    error
	closeOnce sync.Once
}

// Start starts a ledger and returns once it serves requests.
func Start(ctx context.Context, cfg Config) (l *Ledger, err error) {
	if cfg.DataDir == "" {
		return nil, errors.New("ledger: DataDir is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ExpirySweep <= 0 {
		cfg.ExpirySweep = 250 * time.Millisecond
	}
	log := cfg.Logger
	l = &Ledger{cfg: cfg, done: make(chan struct{})}
	defer func() {
		if err != nil {
			l.shutdown()
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	if cfg.NATSURL == "" {
		l.srv, err = StartServer(ServerOptions{Listen: cfg.Listen, StoreDir: filepath.Join(cfg.DataDir, "jetstream"), Durability: cfg.Durability, Logger: log})
		if err != nil {
			return nil, err
		}
		// The ledger's own connection skips TCP.
		l.nc, err = nats.Connect(l.srv.ClientURL(), nats.InProcessServer(l.srv), nats.Name("ledger"))
	} else {
		l.nc, err = nats.Connect(cfg.NATSURL, nats.Name("ledger"), nats.MaxReconnects(-1))
	}
	if err != nil {
		return nil, fmt.Errorf("connect to NATS: %w", err)
	}
	js, err := jetstream.New(l.nc)
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := EnsureStream(sctx, js, cfg.Stream); err != nil {
		return nil, err
	}
	l.store, err = projections.OpenStore(filepath.Join(cfg.DataDir, "projection"), cfg.Store)
	if err != nil {
		return nil, err
	}
	popts := cfg.Projector
	popts.Logger = log
	l.projector, err = projections.NewProjector(js, l.store, popts)
	if err != nil {
		return nil, err
	}
	sopts := cfg.Service
	sopts.Logger = log
	l.service, err = StartService(l.nc, NewAppender(js), l.projector, sopts)
	if err != nil {
		return nil, err
	}
	runCtx, runCancel := context.WithCancel(context.Background())
	l.cancel = runCancel
	go l.service.SweepExpiries(runCtx, cfg.ExpirySweep)
	go func() {
		defer close(l.done)
		if err := l.projector.Run(runCtx); err != nil {
			l.runErr = err
			log.Error("projector stopped", "err", err)
		}
	}()
	log.Info("ledger started", "nats", l.ClientURL(), "embedded", l.srv != nil, "data", cfg.DataDir, "applied_seq", l.projector.Applied())
	return l, nil
}

// ClientURL is where clients connect.
func (l *Ledger) ClientURL() string {
	if l.srv != nil {
		return l.srv.ClientURL()
	}
	return l.cfg.NATSURL
}

// Projector is the ledger's in-process projector.
func (l *Ledger) Projector() *projections.Projector { return l.projector }

// Done is closed when the projector stops (on Close or on a fatal error).
func (l *Ledger) Done() <-chan struct{} { return l.done }

// Err is the error that stopped the projector, if any.
func (l *Ledger) Err() error { return l.runErr }

// Close stops the service, the projector, the connection and the embedded
// server, in that order, so nothing is half-applied.
func (l *Ledger) Close() error {
	l.shutdown()
	return l.runErr
}

func (l *Ledger) shutdown() {
	l.closeOnce.Do(func() {
		if l.service != nil {
			l.service.Stop()
		}
		if l.cancel != nil {
			l.cancel()
			<-l.done
		}
		if l.nc != nil {
			l.nc.Close()
		}
		if l.store != nil {
			l.store.Close()
		}
		if l.srv != nil {
			l.srv.Shutdown()
			l.srv.WaitForShutdown()
		}
	})
}
