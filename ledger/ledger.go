package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ledgerworks/ledger/api"
	"github.com/ledgerworks/ledger/auth"
	"github.com/ledgerworks/ledger/cluster"
	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/metrics"
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
	// Member names this process in the cluster: unique, and the same across
	// restarts (default: the host name and a hash of DataDir).
	Member string
	// Assignment says which partitions this process prefers to own and
	// which it stands by for; it folds both. The zero value owns all.
	Assignment cluster.Assignment
	// LeaseTTL is how long an owner's lease on a partition outlives its
	// last renewal (default 2 s): see cluster.Options.
	LeaseTTL time.Duration
	// AuthFile turns authentication on for the embedded server: only the
	// users of this credentials file (package auth) may connect, each
	// with its role's permissions. The ledger reloads it when it changes.
	// With NATSURL the servers carry the NATS users (ledger creds config)
	// and the file only says who may sign in to the dashboard.
	AuthFile string
	// Credentials are how this process signs in: to the external server
	// of NATSURL, or to the embedded one (default there: a key made at
	// start, never written anywhere, with the ledger role).
	Credentials auth.Credentials
	// TLS is the embedded server's certificate.
	TLS ServerTLS
	// Unleased serves every assigned partition without holding its lease,
	// as an owner that was deposed and has not noticed yet would. Only for
	// tests of the fence, which must keep decisions exact even then.
	Unleased bool
	// HTTP is the address of the operator's HTTP listener (/metrics,
	// /healthz, /readyz; docs/OPERATIONS.md); empty: none.
	HTTP string
	// ReadyMaxLag is how many stream messages the projection may have left
	// to fold for /readyz to say ready (default DefaultReadyMaxLag).
	ReadyMaxLag uint64
	// Dashboard, when set, is served on the HTTP listener at "/" (every
	// path but the three above) instead of the ledger's own dashboard
	// (Ledger.Dashboard, package dashboard).
	Dashboard http.Handler
	Logger    *slog.Logger
}

// Ledger is a running ledger: optionally an embedded NATS server, the stream,
// a projector and the request/reply service, in one process.
type Ledger struct {
	cfg        Config
	srv        *server.Server
	serverOpts ServerOptions
	auth       *credentialsFile
	users      *Users // the embedded server's, when it authenticates
	js         jetstream.JetStream
	replicas   int // the stream's, at start
	authMu     sync.Mutex
	nc         *nats.Conn
	stream     jetstream.Stream
	store      *projections.Store
	projector  *projections.Projector
	service    *Service
	member     *cluster.Member
	status     *statusResponder
	metrics    *metrics.Metrics
	http       *httpServer
	started    atomic.Bool // Start has returned the ledger
	dashOnce   sync.Once
	dash       http.Handler // Dashboard's, once made
	dashSrc    *dashSource
	cancel     context.CancelFunc
	done       chan struct{}
	runErr     error
	closeOnce  sync.Once
}

// Start starts a ledger and returns once it serves requests.
func Start(ctx context.Context, cfg Config) (_ *Ledger, err error) {
	if cfg.DataDir == "" {
		return nil, errors.New("ledger: DataDir is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ExpirySweep <= 0 {
		cfg.ExpirySweep = 250 * time.Millisecond
	}
	if cfg.ReadyMaxLag == 0 {
		cfg.ReadyMaxLag = DefaultReadyMaxLag
	}
	log := cfg.Logger
	l := &Ledger{cfg: cfg, done: make(chan struct{}), metrics: metrics.New()}
	defer func() {
		if err != nil { // l, not the nil every failed return gives back
			l.shutdown()
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	if cfg.NATSURL == "" {
		l.serverOpts = ServerOptions{Listen: cfg.Listen, StoreDir: filepath.Join(cfg.DataDir, "jetstream"), Durability: cfg.Durability, Logger: log, TLS: cfg.TLS}
		if cfg.AuthFile != "" {
			if l.auth, err = followCredentials(cfg.AuthFile, cfg.Credentials, true); err != nil {
				return nil, err
			}
			l.users = NewUsers(l.auth.users)
			l.serverOpts.Users = l.users
		} else {
			log.Warn("authentication is off: any process that reaches the listen address may record usage and change quotas; use --auth (docs/SECURITY.md)", "listen", cfg.Listen)
		}
		l.srv, err = StartServer(l.serverOpts)
		if err != nil {
			return nil, err
		}
		var opts []nats.Option
		if opts, err = connectOptions(cfg, l.auth); err != nil {
			return nil, err
		}
		// The ledger's own connection skips TCP and TLS: its URL must not
		// be the tls:// one of a server with a certificate, which would make
		// the client verify that certificate against the system's CAs.
		inProcessURL := "nats://" + strings.TrimPrefix(l.srv.ClientURL(), "tls://")
		l.nc, err = nats.Connect(inProcessURL, append(opts, nats.InProcessServer(l.srv), nats.Name("ledger"))...)
	} else {
		if cfg.AuthFile != "" { // the dashboard's sign-in only: the servers carry the NATS users
			if l.auth, err = followCredentials(cfg.AuthFile, cfg.Credentials, false); err != nil {
				return nil, err
			}
		}
		var opts []nats.Option
		if opts, err = connectOptions(cfg, nil); err != nil {
			return nil, err
		}
		l.nc, err = nats.Connect(cfg.NATSURL, append(opts, nats.Name("ledger"), nats.MaxReconnects(-1))...)
	}
	if err != nil {
		return nil, fmt.Errorf("connect to NATS: %w", err)
	}
	js, err := jetstream.New(l.nc)
	if err != nil {
		return nil, err
	}
	var stream jetstream.Stream
	if err := retryStartup(ctx, log, "ledger stream", func(ctx context.Context) (err error) {
		stream, err = EnsureStream(ctx, js, cfg.Stream)
		return err
	}); err != nil {
		return nil, err
	}
	// The lease bucket has the stream's replicas: leases that are lost
	// with a node would stop a cluster the stream survives.
	l.stream = stream
	replicas := stream.CachedInfo().Config.Replicas
	l.js, l.replicas = js, replicas
	if err := checkPartitionMappings(l.nc); err != nil {
		return nil, err
	}
	l.store, err = projections.OpenStore(filepath.Join(cfg.DataDir, "projection"), cfg.Store)
	if err != nil {
		return nil, err
	}
	asg := cfg.Assignment
	if len(asg.Owns)+len(asg.Standby) == 0 {
		asg.Owns = cluster.All()
	}
	if err := asg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Member == "" {
		cfg.Member = DefaultMemberName(cfg.DataDir)
		l.cfg.Member = cfg.Member
	}
	popts := cfg.Projector
	popts.Logger = log
	if parts := asg.Partitions(); len(parts) < events.Partitions {
		popts.Partitions = parts
	}
	l.projector, err = projections.NewProjector(js, l.store, popts)
	if err != nil {
		return nil, err
	}
	sopts := cfg.Service
	sopts.Logger = log
	sopts.Metrics = l.metrics
	l.service, err = NewService(l.nc, NewAppender(js), l.projector, cfg.Member, sopts)
	if err != nil {
		return nil, err
	}
	runCtx, runCancel := context.WithCancel(context.Background())
	l.cancel = runCancel
	go func() {
		defer close(l.done)
		if err := l.projector.Run(runCtx); err != nil {
			l.runErr = err
			log.Error("projector stopped", "err", err)
		}
	}()
	// The HTTP listener is up while the ledger catches up and claims its
	// partitions, which can take a while: /healthz answers, /readyz says
	// why it is not ready yet.
	if cfg.HTTP != "" {
		ready := &readiness{js: js, stream: l.stream, proj: l.projector, parts: asg.Partitions(), maxLag: cfg.ReadyMaxLag, started: &l.started}
		if l.http, err = startHTTP(cfg.HTTP, l.metrics, ready, l.dashboardHandler(), log); err != nil {
			return nil, err
		}
	}
	// Partitions are claimed once the projection has caught up, so the
	// projector runs first.
	if cfg.Unleased {
		for _, p := range asg.Partitions() {
			if err := l.service.Serve(p, 0); err != nil {
				return nil, err
			}
		}
	} else {
		l.member, err = cluster.Join(ctx, js, cluster.Options{Name: cfg.Member, Assignment: asg, Replicas: replicas, LeaseTTL: cfg.LeaseTTL, Logger: log}, ownership{l})
		if err != nil {
			return nil, err
		}
	}
	l.status, err = startStatus(ctx, l.nc, l.stream, l.projector, cfg.Member, "ledger", l.partitionStates)
	if err != nil {
		return nil, err
	}
	go l.service.SweepExpiries(runCtx, cfg.ExpirySweep)
	if l.auth != nil {
		go l.watchAuth(runCtx, time.Second)
	}
	// Registered last: the scrape reads what Start has set up.
	parts := asg.Partitions()
	if err := l.metrics.Watch(metrics.Sources{
		Projector: l.projector, Store: l.store, Conn: l.nc, Partitions: l.partitionStates,
		Stream: func(ctx context.Context) (metrics.StreamState, error) {
			return streamState(ctx, js, l.stream, parts, l.projector.Applied())
		},
	}); err != nil {
		return nil, err
	}
	l.started.Store(true)
	log.Info("ledger started", "nats", l.ClientURL(), "embedded", l.srv != nil, "data", cfg.DataDir, "member", cfg.Member,
		"owns", cluster.FormatPartitions(asg.Owns), "standby", cluster.FormatPartitions(asg.Standby), "replicas", replicas, "applied_seq", l.projector.Applied())
	return l, nil
}

// ownership is how the ledger takes and gives up partitions: it claims one
// once its projection has caught up with the stream, then serves it.
type ownership struct{ l *Ledger }

func (o ownership) CatchUp(ctx context.Context, p int) error {
	last, err := LastSeqOf(ctx, o.l.stream, []string{events.PartitionFilter(p)})
	if err != nil {
		return err
	}
	if o.l.replicas > 1 {
		// The leader's answer may be stale just after a network partition
		// heals; a barrier's acknowledgement needs the quorum
		// (events.BarrierSubject).
		ack, err := o.l.js.Publish(ctx, events.BarrierSubject(p), []byte(o.l.cfg.Member))
		if err != nil {
			return fmt.Errorf("barrier of partition %d: %w", p, err)
		}
		last = max(last, ack.Sequence)
	}
	return o.l.projector.WaitApplied(ctx, last)
}

func (o ownership) Own(p int, epoch uint64) error { return o.l.service.Serve(p, epoch) }

func (o ownership) Disown(p int) { o.l.service.Unserve(p) }

// partitionStates says what this ledger does for each partition it folds.
func (l *Ledger) partitionStates() []api.PartitionStatus {
	if l.member == nil { // unleased: serves all it folds
		var out []api.PartitionStatus
		for p := range events.Partitions {
			if l.service.Serving(p) {
				out = append(out, api.PartitionStatus{Partition: p, State: "owner"})
			}
		}
		return out
	}
	ps := l.member.Partitions()
	out := make([]api.PartitionStatus, len(ps))
	for i, p := range ps {
		out[i] = api.PartitionStatus{Partition: p.Partition, State: "standby", Owner: p.Owner}
		if p.Owned {
			out[i].State, out[i].Epoch = "owner", p.Epoch
		}
	}
	return out
}

// Metrics are the ledger's metrics, served on its HTTP listener's /metrics.
func (l *Ledger) Metrics() *metrics.Metrics { return l.metrics }

// HTTPAddr is the address the HTTP listener is bound to ("" without one):
// Config.HTTP with its port filled in when it asked for port 0.
func (l *Ledger) HTTPAddr() string {
	if l.http == nil {
		return ""
	}
	return l.http.addr()
}

// Member is the ledger's membership of the cluster (nil when Unleased).
func (l *Ledger) Member() *cluster.Member { return l.member }

// Service is the ledger's request/reply service.
func (l *Ledger) Service() *Service { return l.service }

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
		if l.http != nil {
			l.http.close() // first: a scrape reads everything below
		}
		if l.member != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			l.member.Leave(ctx)
			cancel()
		}
		if l.status != nil {
			l.status.stop()
		}
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

// retryStartup runs f until it succeeds, each try bounded by 5 s, for up to
// a minute: on a cluster that has just formed, JetStream requests time out
// until the assets' replicas have elected leaders. Errors that no wait
// mends (a stream with another layout) come back at once.
func retryStartup(ctx context.Context, log *slog.Logger, what string, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		actx, acancel := context.WithTimeout(ctx, 5*time.Second)
		err := f(actx)
		acancel()
		if err == nil || !transient(err) {
			return err
		}
		log.Info("not ready yet", "what", what, "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// transient reports whether err is JetStream not answering yet: no answer,
// "temporarily unavailable" (503), no leader yet, or too few peers for the
// replicas asked for (the cluster is still forming).
func transient(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code == 503 || apiErr.ErrorCode == 10009 || apiErr.ErrorCode == 10005
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders)
}
