package replay_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/internal/ledgertest"
	"github.com/ledgerworks/ledger/ledger"
	"github.com/ledgerworks/ledger/projections"
	"github.com/ledgerworks/ledger/replay"
)

func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// stream starts an embedded server with the ledger stream and returns a
// JetStream context on it.
func stream(t *testing.T) (*ledgertest.Server, jetstream.JetStream) {
	t.Helper()
	srv := ledgertest.StartServer(t, "")
	js := ledgertest.JetStream(t, ledgertest.Connect(t, srv.URL()))
	ctx := testCtx(t, 10*time.Second)
	if _, err := ledger.EnsureStream(ctx, js, ledger.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	return srv, js
}

func source(t *testing.T, js jetstream.JetStream) *replay.StreamSource {
	t.Helper()
	src, err := replay.NewStreamSource(js, replay.StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// batch is one stream message to append: one tenant's events on one class.
type batch struct {
	tenant, class string
	evs           []events.Event
}

// appendAll appends batches in order and returns the sequence of each.
func appendAll(t *testing.T, js jetstream.JetStream, bs []batch) []uint64 {
	t.Helper()
	ctx := testCtx(t, 120*time.Second)
	app := ledger.NewAppender(js)
	seqs := make([]uint64, len(bs))
	for i, b := range bs {
		seq, err := app.Append(ctx, b.tenant, b.class, b.evs, nil)
		if err != nil {
			t.Fatalf("append batch %d: %v", i, err)
		}
		seqs[i] = seq
	}
	return seqs
}

// appendConcurrently appends batches from several goroutines, each owning
// some tenants (so each tenant's batches keep their order), and returns the
// stream's last sequence.
func appendConcurrently(t *testing.T, js jetstream.JetStream, bs []batch, workers int) uint64 {
	t.Helper()
	ctx := testCtx(t, 120*time.Second)
	parts := make([][]batch, workers)
	for _, b := range bs {
		w := events.Partition(b.tenant) % workers
		parts[w] = append(parts[w], b)
	}
	var mu sync.Mutex
	var last uint64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for _, part := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			app := ledger.NewAppender(js)
			for _, b := range part {
				seq, err := app.Append(ctx, b.tenant, b.class, b.evs, nil)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				last = max(last, seq)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return last
}

// live runs a projector on its own store, as a live one runs, until the
// test ends.
type live struct {
	store *projections.Store
	p     *projections.Projector
	dir   string
	stop  func()
}

func startLive(t *testing.T, js jetstream.JetStream, dir string) *live {
	t.Helper()
	if dir == "" {
		dir = filepath.Join(t.TempDir(), "live")
	}
	store, err := projections.OpenStore(dir, projections.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := projections.NewProjector(js, store, projections.ProjectorOptions{MaxBatch: 512})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	l := &live{store: store, p: p, dir: dir}
	stopped := false
	l.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("live projector: %v", err)
		}
		store.Close()
	}
	t.Cleanup(l.stop)
	return l
}

func (l *live) wait(t *testing.T, seq uint64) {
	t.Helper()
	ctx := testCtx(t, 60*time.Second)
	if err := l.p.WaitApplied(ctx, seq); err != nil {
		t.Fatal(err)
	}
}

// genOptions shape a generated history.
type genOptions struct {
	Seed    uint64
	Events  int
	Tenants int
	Start   time.Time
	// TZ is the zone of the daily token limit ("" for UTC). Each event it
	// applies to loads the zone again (events.Window.Location), which is
	// slow: the large tests leave it empty.
	TZ string
}

// generator produces a deterministic history using every event type:
// quotas (set, replaced, deleted), usage (with duplicates resent in other
// messages, corrections, named actions, costs), reservations reconciled,
// released and expired, retry signals, workflows, counter resets, plans,
// an invalid event now and then and events on another tenant's subject.
type generator struct {
	rng     *rand.Rand
	now     time.Time
	n       int
	tenants []*genTenant
	out     []batch
	events  int
	tz      string
}

type genTenant struct {
	name      string
	quotas    []string
	open      []string // reservations
	workflows []string
	retries   []events.Dimensions
	usage     []events.Event // recent usage, to resend
}

var genUsers = []string{"ana", "ben", "cai", "dee", "eli"}
var genModels = []string{"gpt-4o", "claude", "llama"}

func genQuotas(tz string) []events.Quota {
	return []events.Quota{
		{ID: "daily-tokens", Scope: map[string]string{"model": "gpt-4o"}, Split: []string{"user"},
			Limits: []events.Limit{
				{Metric: events.MetricTokens, Max: 200_000, Window: events.Window{Kind: events.Calendar, Unit: events.UnitDay, TZ: tz}},
				{Metric: events.MetricRequests, Max: 500, Window: events.Window{Kind: events.Sliding, Seconds: 3600}},
			},
			Costs: events.Counts{"embedding": 5}, WarnPercent: 75},
		{ID: "minute", Split: []string{"user", "model"},
			Limits: []events.Limit{
				{Metric: events.MetricInputTokens, Max: 20_000, Window: events.Window{Kind: events.Sliding, Seconds: 60}},
				{Metric: events.MetricOutputTokens, Max: 10_000, Window: events.Window{Kind: events.Calendar, Unit: events.UnitHour}},
				{Metric: events.MetricCost, Max: 5_000_000, Window: events.Window{Kind: events.Calendar, Unit: events.UnitMonth}},
			}},
		{ID: "rolling", Scope: map[string]string{"group": "staff"}, Split: []string{"user"}, Enforcement: events.Soft,
			Limits: []events.Limit{
				{Metric: events.ActionMetric("new_run"), Max: 50, Window: events.Window{Kind: events.Rolling, Seconds: 1800}},
				{Metric: events.MetricWorkflows, Max: 20, Window: events.Window{Kind: events.Calendar, Unit: events.UnitDay}},
			},
			MaxSteps: 5},
	}
}

func newGenerator(o genOptions) *generator {
	g := &generator{rng: rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15)), now: o.Start, n: o.Events, tz: o.TZ}
	for i := range o.Tenants {
		g.tenants = append(g.tenants, &genTenant{name: fmt.Sprintf("t%02d", i)})
	}
	return g
}

func (g *generator) id(prefix string) string {
	g.events++
	return fmt.Sprintf("%s-%d", prefix, g.events)
}

func (g *generator) tick() time.Time {
	g.now = g.now.Add(time.Duration(g.rng.IntN(2000)) * time.Millisecond)
	return g.now
}

func (g *generator) dims() events.Dimensions {
	d := events.Dimensions{"user": genUsers[g.rng.IntN(len(genUsers))], "model": genModels[g.rng.IntN(len(genModels))]}
	if g.rng.IntN(4) == 0 {
		d["operation"] = "embedding"
	}
	return d
}

func (g *generator) groups(d events.Dimensions) []string {
	if d["user"] == "ana" || d["user"] == "ben" {
		return []string{"staff"}
	}
	return nil
}

func (g *generator) amounts() events.Amounts {
	a := events.Amounts{InputTokens: g.rng.Int64N(2000), OutputTokens: g.rng.Int64N(800), Requests: 1, Cost: g.rng.Int64N(5000)}
	if g.rng.IntN(5) == 0 {
		a.Actions = events.Counts{"new_run": 1 + g.rng.Int64N(2)}
	}
	if g.rng.IntN(7) == 0 {
		if a.Actions == nil {
			a.Actions = events.Counts{}
		}
		a.Actions["ai_query"] = 1
	}
	return a
}

func (g *generator) emit(tenant, class string, evs ...events.Event) {
	g.out = append(g.out, batch{tenant: tenant, class: class, evs: evs})
}

func (g *generator) ev(tn *genTenant, prefix string, d events.Dimensions, p events.Payload) events.Event {
	ev := events.New(g.id(prefix), tn.name, g.tick(), d, p)
	if d != nil {
		ev.Groups = g.groups(d)
	}
	return ev
}

// run generates about o.Events events.
func (g *generator) run() []batch {
	for _, tn := range g.tenants {
		for _, q := range genQuotas(g.tz) {
			g.emit(tn.name, events.ClassAdmin, g.ev(tn, "q", nil, &events.QuotaSet{Quota: q}))
			tn.quotas = append(tn.quotas, q.ID)
		}
	}
	for g.events < g.n {
		tn := g.tenants[g.rng.IntN(len(g.tenants))]
		switch r := g.rng.IntN(1000); {
		case r < 600: // usage, in batches; now and then a resend of earlier events
			var evs []events.Event
			for range 1 + g.rng.IntN(48) {
				ev := g.ev(tn, "u", g.dims(), &events.UsageRecorded{Amounts: g.amounts()})
				evs = append(evs, ev)
				tn.usage = append(tn.usage, ev)
			}
			if len(tn.usage) > 200 {
				tn.usage = tn.usage[len(tn.usage)-200:]
			}
			if g.rng.IntN(10) == 0 {
				old := tn.usage[g.rng.IntN(len(tn.usage))]
				if g.rng.IntN(2) == 0 { // same ID, other amounts: the first one counts
					old.Payload = &events.UsageRecorded{Amounts: g.amounts()}
				}
				evs = append(evs, old)
			}
			g.emit(tn.name, events.ClassUsage, evs...)
		case r < 620:
			if len(tn.usage) > 0 {
				old := tn.usage[g.rng.IntN(len(tn.usage))]
				g.emit(tn.name, events.ClassUsage, g.ev(tn, "c", old.Dims, &events.UsageCorrected{Corrects: old.ID, Delta: events.Amounts{InputTokens: -g.rng.Int64N(100), Cost: g.rng.Int64N(100)}, Reason: "re-priced"}))
			}
		case r < 720:
			id := g.id("r")
			at := g.tick()
			est := g.amounts()
			ev := events.New(g.id("rc"), tn.name, at, g.dims(), &events.ReservationCreated{Reservation: id, Estimate: est, ExpiresAt: at.Add(time.Minute)})
			ev.Groups = g.groups(ev.Dims)
			tn.open = append(tn.open, id)
			g.emit(tn.name, events.ClassDecision, ev)
		case r < 820:
			if len(tn.open) == 0 {
				continue
			}
			i := g.rng.IntN(len(tn.open))
			id := tn.open[i]
			tn.open = append(tn.open[:i], tn.open[i+1:]...)
			var p events.Payload
			switch g.rng.IntN(5) {
			case 0, 1, 2:
				p = &events.ReservationReconciled{Reservation: id, Actual: g.amounts()}
			case 3:
				p = &events.ReservationReleased{Reservation: id, Reason: "never ran"}
			default:
				p = &events.ReservationExpired{Reservation: id}
			}
			evs := []events.Event{g.ev(tn, "rs", nil, p)}
			if g.rng.IntN(8) == 0 { // a second settlement of the same reservation changes nothing
				evs = append(evs, g.ev(tn, "rs", nil, &events.ReservationReleased{Reservation: id}))
			}
			g.emit(tn.name, events.ClassDecision, evs...)
		case r < 840:
			d := events.Dimensions{"model": genModels[g.rng.IntN(len(genModels))], "location": "eu", "metric": "tokens"}
			at := g.tick()
			g.emit(tn.name, events.ClassDecision, events.New(g.id("rt"), tn.name, at, d, &events.RetrySignalled{RetryUntil: at.Add(30 * time.Second), RetryDelay: "30s", QuotaMetric: "tokens", QuotaID: "upstream", QuotaDimensions: map[string]string{"location": "eu"}}))
			tn.retries = append(tn.retries, d)
		case r < 855:
			if len(tn.retries) > 0 {
				d := tn.retries[0]
				tn.retries = tn.retries[1:]
				g.emit(tn.name, events.ClassDecision, g.ev(tn, "rtc", d, &events.RetryCleared{}))
			}
		case r < 890:
			id := g.id("w")
			g.emit(tn.name, events.ClassDecision, g.ev(tn, "wb", g.dims(), &events.WorkflowBegun{Workflow: id}))
			tn.workflows = append(tn.workflows, id)
		case r < 950:
			if len(tn.workflows) > 0 {
				w := tn.workflows[g.rng.IntN(len(tn.workflows))]
				g.emit(tn.name, events.ClassDecision, g.ev(tn, "ws", nil, &events.WorkflowStepped{Workflow: w, Step: g.rng.Int64N(10)}))
			}
		case r < 970:
			if len(tn.workflows) > 0 {
				i := g.rng.IntN(len(tn.workflows))
				w := tn.workflows[i]
				tn.workflows = append(tn.workflows[:i], tn.workflows[i+1:]...)
				g.emit(tn.name, events.ClassDecision, g.ev(tn, "we", nil, &events.WorkflowEnded{Workflow: w, Outcome: "success"}))
			}
		case r < 976: // replace a quota (other maximum, same windows) or set it again after a delete
			q := genQuotas(g.tz)[g.rng.IntN(3)]
			q.Limits[0].Max += g.rng.Int64N(1000)
			g.emit(tn.name, events.ClassAdmin, g.ev(tn, "qs", nil, &events.QuotaSet{Quota: q}))
		case r < 979:
			g.emit(tn.name, events.ClassAdmin, g.ev(tn, "qd", nil, &events.QuotaDeleted{Quota: genQuotas(g.tz)[g.rng.IntN(3)].ID}))
		case r < 985:
			split := ""
			if g.rng.IntN(2) == 0 {
				split = genUsers[g.rng.IntN(len(genUsers))]
			}
			g.emit(tn.name, events.ClassAdmin, g.ev(tn, "cr", nil, &events.CounterReset{Quota: genQuotas(g.tz)[g.rng.IntN(3)].ID, Split: split, Reason: "support ticket"}))
		case r < 990:
			g.emit(tn.name, events.ClassAdmin, g.ev(tn, "ps", nil, &events.PlanSet{Project: "p1", RunTimeoutMs: g.rng.Int64N(60000), SaveDataclips: g.rng.IntN(2) == 0, RetentionDays: []int{7, 30}}))
		case r < 995: // invalid: refused by the projector
			g.emit(tn.name, events.ClassUsage, g.ev(tn, "bad", g.dims(), &events.UsageRecorded{Amounts: events.Amounts{Tokens: -5}}))
		default: // on another tenant's subject: refused
			other := g.tenants[g.rng.IntN(len(g.tenants))]
			if other != tn {
				g.emit(other.name, events.ClassUsage, g.ev(tn, "x", g.dims(), &events.UsageRecorded{Amounts: g.amounts()}))
			}
		}
	}
	return g.out
}

func countEvents(bs []batch) int {
	n := 0
	for _, b := range bs {
		n += len(b.evs)
	}
	return n
}

func digest(t *testing.T, s *projections.Store) *replay.Digest {
	t.Helper()
	d, err := replay.DigestStore(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func fmtInt(n int64) string { return fmt.Sprint(n) }
