package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ledgerworks/ledger/metrics"
	"github.com/ledgerworks/ledger/projections"
)

// DefaultReadyMaxLag is how many stream messages a projection may have left
// to fold and still be ready (Config.ReadyMaxLag).
const DefaultReadyMaxLag = 1000

// readyTimeout bounds a readiness check: it answers before `ledger health`
// (2 s by default) gives up on it.
const readyTimeout = 1500 * time.Millisecond

// httpServer is the operator's HTTP listener: /metrics, /healthz, /readyz
// and, when one is given, the dashboard.
type httpServer struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

// startHTTP listens on addr and serves the operator's endpoints:
//
//	/metrics  the Prometheus metrics of m
//	/healthz  200 "ok" while the process runs
//	/readyz   200 when ready says so, else 503; a one-line JSON body either way
//	/         dashboard, when not nil
func startHTTP(addr string, m *metrics.Metrics, ready *readiness, dashboard http.Handler, log *slog.Logger) (*httpServer, error) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("/readyz", ready)
	if dashboard != nil {
		// The dashboard (package dashboard) serves everything else.
		mux.Handle("/", dashboard)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("http listen: %w", err)
	}
	s := &httpServer{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, ln: ln, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	log.Info("http listening: /metrics, /healthz, /readyz", "addr", ln.Addr().String(), "dashboard", dashboard != nil)
	return s, nil
}

// addr is the address the server listens on.
func (s *httpServer) addr() string { return s.ln.Addr().String() }

// close stops the server, letting requests in flight (a scrape) finish for
// a few seconds.
func (s *httpServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		_ = s.srv.Close()
	}
	<-s.done
}

// readiness answers /readyz: ready once the process has started, its
// projection has caught up with the stream as the first look found it, the
// stream answers, and the projection has at most maxLag messages left to
// fold.
type readiness struct {
	js      jetstream.JetStream
	stream  jetstream.Stream
	proj    *projections.Projector
	parts   []int // the partitions the projection folds
	maxLag  uint64
	started *atomic.Bool // nil: started from the beginning

	mu     sync.Mutex
	target uint64 // the last sequence of those partitions at the first look (0: not looked yet)
	looked bool
	caught bool // reached target once
}

// readyReply is /readyz's body.
type readyReply struct {
	Ready       bool   `json:"ready"`
	Reason      string `json:"reason,omitempty"`
	AppliedSeq  uint64 `json:"applied_seq"`
	LagMessages uint64 `json:"lag_messages"`
}

// check says whether the process is ready and, when not, why.
func (r *readiness) check(ctx context.Context) readyReply {
	applied := r.proj.Applied()
	out := readyReply{AppliedSeq: applied}
	if r.started != nil && !r.started.Load() {
		out.Reason = "starting"
		return out
	}
	st, err := streamState(ctx, r.js, r.stream, r.parts, applied)
	if err != nil {
		out.Reason = "the stream does not answer: " + err.Error()
		return out
	}
	for _, l := range st.Lag {
		out.LagMessages += l.Messages
	}
	// A process that starts behind catches up with what the stream held
	// when it was first asked, before the lag bound is enough: a member
	// starting under load is never exactly caught up. The first look is
	// here, not at start, so that a stream still electing its leader does
	// not stop the process from starting.
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.looked {
		target, err := LastSeqOf(ctx, r.stream, r.proj.Filters())
		if err != nil {
			out.Reason = "the stream does not answer: " + err.Error()
			return out
		}
		r.target, r.looked = target, true
	}
	if !r.caught {
		if applied < r.target {
			out.Reason = fmt.Sprintf("catching up: applied sequence %d of %d, the stream's last when first asked", applied, r.target)
			return out
		}
		r.caught = true
	}
	if out.LagMessages > r.maxLag {
		out.Reason = fmt.Sprintf("the projection is %d messages behind the stream (at most %d for ready)", out.LagMessages, r.maxLag)
		return out
	}
	out.Ready = true
	return out
}

func (r *readiness) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	ctx, cancel := context.WithTimeout(req.Context(), readyTimeout)
	defer cancel()
	out := r.check(ctx)
	b, _ := json.Marshal(out)
	w.Header().Set("Content-Type", "application/json")
	if !out.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_, _ = w.Write(append(b, '\n'))
}
