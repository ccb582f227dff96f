package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are one process's metrics on a registry of their own (never the
// global default, so two ledgers in one test binary count apart). The
// request metrics are counted by the code that handles requests through
// Decision and Check, which do nothing on a nil *Metrics: code that runs
// without metrics (a test's bare Service) passes nil. The rest is read at
// each scrape from the Sources given to Watch.
//
// No label carries a tenant, a user or any other value a caller chooses:
// operations, results (decision outcomes and error codes), partitions and
// states are fixed sets.
type Metrics struct {
	reg             *prometheus.Registry
	decisions       *prometheus.CounterVec
	decisionSeconds *prometheus.HistogramVec
	checks          *prometheus.CounterVec
	checkSeconds    prometheus.Histogram
}

// Latency buckets, in seconds. A decision is a fenced append the stream
// acknowledges (with fsync by default): about a millisecond on one node, a
// few on a cluster. A check reads memory and Pebble: tens of microseconds.
var (
	decisionBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}
	checkBuckets    = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}
)

// New returns the metrics of a process, with the Go runtime's and the
// process's own collectors registered.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ledger_decisions_total",
			Help: "Decisions answered, by operation and result: the decision's outcome (created, consumed, reconciled, ...) or the error code that refused it (quota_exceeded, retry_later, ...).",
		}, []string{"op", "result"}),
		decisionSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ledger_decision_duration_seconds",
			Help:    "Time from a decision request's arrival to its answer (the append acknowledged, or the refusal), by operation.",
			Buckets: decisionBuckets,
		}, []string{"op"}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ledger_checks_total",
			Help: "Quota checks answered, by result: allowed, or the code of the denial or error (quota_exceeded, retry_later, not_found, ...).",
		}, []string{"result"}),
		checkSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ledger_check_duration_seconds",
			Help:    "Time to answer a quota check.",
			Buckets: checkBuckets,
		}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.decisions, m.decisionSeconds, m.checks, m.checkSeconds,
	)
	return m
}

// Registry is where the metrics are registered (nil for nil metrics).
func (m *Metrics) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.reg
}

// Handler serves the registry in the Prometheus exposition format. A
// collector that fails is reported in the log and left out; the others are
// still served.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, Registry: m.reg})
}

// Decision counts a decision of operation op with its result and how long
// it took.
func (m *Metrics) Decision(op, result string, took time.Duration) {
	if m == nil {
		return
	}
	m.decisions.WithLabelValues(op, result).Inc()
	m.decisionSeconds.WithLabelValues(op).Observe(took.Seconds())
}

// Check counts a quota check with its result and how long it took.
func (m *Metrics) Check(result string, took time.Duration) {
	if m == nil {
		return
	}
	m.checks.WithLabelValues(result).Inc()
	m.checkSeconds.Observe(took.Seconds())
}
