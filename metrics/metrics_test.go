package metrics

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Code without metrics passes a nil *Metrics: counting on it does nothing.
func TestNilMetricsCountNothing(t *testing.T) {
	var m *Metrics
	m.Decision("reserve", "created", time.Millisecond)
	m.Check("allowed", time.Millisecond)
	if m.Registry() != nil {
		t.Fatal("nil metrics have a registry")
	}
}

// Decisions and checks are counted by their labels, with their latency.
func TestDecisionsAndChecksCounted(t *testing.T) {
	m := New()
	for range 3 {
		m.Decision("reserve", "created", 2*time.Millisecond)
	}
	m.Decision("reserve", "quota_exceeded", time.Millisecond)
	m.Check("allowed", 50*time.Microsecond)
	if got := testutil.ToFloat64(m.decisions.WithLabelValues("reserve", "created")); got != 3 {
		t.Errorf("reserve created = %v, want 3", got)
	}
	if got := testutil.ToFloat64(m.decisions.WithLabelValues("reserve", "quota_exceeded")); got != 1 {
		t.Errorf("reserve quota_exceeded = %v, want 1", got)
	}
	if got := testutil.CollectAndCount(m.decisionSeconds); got != 1 {
		t.Errorf("%d decision histograms, want 1 (op reserve)", got)
	}
	if got := testutil.ToFloat64(m.checks.WithLabelValues("allowed")); got != 1 {
		t.Errorf("checks allowed = %v, want 1", got)
	}
	if err := testutil.GatherAndCompare(m.reg, strings.NewReader(`
# HELP ledger_check_duration_seconds Time to answer a quota check.
# TYPE ledger_check_duration_seconds histogram
ledger_check_duration_seconds_bucket{le="5e-05"} 1
ledger_check_duration_seconds_bucket{le="0.0001"} 1
ledger_check_duration_seconds_bucket{le="0.00025"} 1
ledger_check_duration_seconds_bucket{le="0.0005"} 1
ledger_check_duration_seconds_bucket{le="0.001"} 1
ledger_check_duration_seconds_bucket{le="0.0025"} 1
ledger_check_duration_seconds_bucket{le="0.005"} 1
ledger_check_duration_seconds_bucket{le="0.01"} 1
ledger_check_duration_seconds_bucket{le="0.025"} 1
ledger_check_duration_seconds_bucket{le="0.05"} 1
ledger_check_duration_seconds_bucket{le="0.1"} 1
ledger_check_duration_seconds_bucket{le="0.25"} 1
ledger_check_duration_seconds_bucket{le="0.5"} 1
ledger_check_duration_seconds_bucket{le="1"} 1
ledger_check_duration_seconds_bucket{le="+Inf"} 1
ledger_check_duration_seconds_sum 5e-05
ledger_check_duration_seconds_count 1
`), "ledger_check_duration_seconds"); err != nil {
		t.Error(err)
	}
}

// Sources left nil leave their metrics out, and the registry still gathers;
// every metric passes the registry's own consistency checks and the
// Prometheus naming rules (promlint).
func TestWatchWithoutSources(t *testing.T) {
	m := New()
	if err := m.Watch(Sources{}); err != nil {
		t.Fatal(err)
	}
	fams, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		for _, d := range allDescs {
			if strings.Contains(d.String(), `fqName: "`+f.GetName()+`"`) {
				t.Errorf("%s served without a source", f.GetName())
			}
		}
	}
	reg := prometheus.NewPedanticRegistry()
	m.Decision("reserve", "created", time.Millisecond)
	m.Check("allowed", time.Millisecond)
	reg.MustRegister(m.decisions, m.decisionSeconds, m.checks, m.checkSeconds)
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

// docs/OPERATIONS.md names every ledger_* metric, and no other.
func TestOperationsDocListsEveryMetric(t *testing.T) {
	doc, err := os.ReadFile("../docs/OPERATIONS.md")
	if err != nil {
		t.Fatal(err)
	}
	m := New()
	var served []string
	for _, c := range []prometheus.Collector{m.decisions, m.decisionSeconds, m.checks, m.checkSeconds, &collector{}} {
		ch := make(chan *prometheus.Desc, 64)
		c.Describe(ch)
		close(ch)
		for d := range ch {
			served = append(served, regexp.MustCompile(`fqName: "([a-z_]+)"`).FindStringSubmatch(d.String())[1])
		}
	}
	slices.Sort(served)
	served = slices.Compact(served)
	// The tables' rows: | `name` | type | ... (a row may name two).
	var documented []string
	for _, line := range strings.Split(string(doc), "\n") {
		if !strings.HasPrefix(line, "| `ledger_") {
			continue
		}
		first, _, _ := strings.Cut(strings.TrimPrefix(line, "| "), " |")
		for _, name := range regexp.MustCompile("`(ledger_[a-z_]+)`").FindAllStringSubmatch(first, -1) {
			documented = append(documented, name[1])
		}
	}
	slices.Sort(documented)
	documented = slices.Compact(documented)
	for _, name := range served {
		if !slices.Contains(documented, name) {
			t.Errorf("%s is served but not in docs/OPERATIONS.md's tables", name)
		}
	}
	for _, name := range documented {
		if !slices.Contains(served, name) {
			t.Errorf("docs/OPERATIONS.md lists %s, which is not served", name)
		}
	}
}
