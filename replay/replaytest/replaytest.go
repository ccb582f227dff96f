// Package replaytest holds what the tests of replay and of the commands share:
// a stream on an embedded server, appends, a live projector, a generator of
// histories with every event type, and hand-made fixtures whose outcomes
// are worked out in the tests.
package replaytest

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

func Ctx(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// stream starts an embedded server with the ledger stream and returns a
// JetStream context on it.
func Stream(t testing.TB) (*ledgertest.Server, jetstream.JetStream) {
	t.Helper()
	srv := ledgertest.StartServer(t, "")
	js := ledgertest.JetStream(t, ledgertest.Connect(t, srv.URL()))
	ctx := Ctx(t, 10*time.Second)
	if _, err := ledger.EnsureStream(ctx, js, ledger.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	return srv, js
}

func Source(t testing.TB, js jetstream.JetStream) *replay.StreamSource {
	t.Helper()
	src, err := replay.NewStreamSource(js, replay.StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// Batch is one stream message to append: one tenant's events on one class.
type Batch struct {
	Tenant, Class string
	Events        []events.Event
}

// AppendAll appends batches in order and returns the sequence of each.
func AppendAll(t testing.TB, js jetstream.JetStream, bs []Batch) []uint64 {
	t.Helper()
	ctx := Ctx(t, 120*time.Second)
	app := ledger.NewAppender(js)
	seqs := make([]uint64, len(bs))
	for i, b := range bs {
		seq, err := app.Append(ctx, b.Tenant, b.Class, b.Events, nil)
		if err != nil {
			t.Fatalf("append Batch %d: %v", i, err)
		}
		seqs[i] = seq
	}
	return seqs
}

// AppendConcurrently appends batches from several goroutines, each owning
// some tenants (so each tenant's batches keep their order), and returns the
// stream's last sequence.
func AppendConcurrently(t testing.TB, js jetstream.JetStream, bs []Batch, workers int) uint64 {
	t.Helper()
	ctx := Ctx(t, 120*time.Second)
	parts := make([][]Batch, workers)
	for _, b := range bs {
		w := events.Partition(b.Tenant) % workers
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
				seq, err := app.Append(ctx, b.Tenant, b.Class, b.Events, nil)
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

// Live is a projector running on its own store, as a live one runs, until
// the test ends.
type Live struct {
	Store *projections.Store
	P     *projections.Projector
	Dir   string
	// Stop stops the projector and closes its store (also at cleanup).
	Stop func()
}

// StartLive starts a projector folding the stream into dir (a new test
// directory when empty) in batches of at most 2048 messages.
func StartLive(t testing.TB, js jetstream.JetStream, dir string) *Live {
	t.Helper()
	if dir == "" {
		dir = filepath.Join(t.TempDir(), "live")
	}
	store, err := projections.OpenStore(dir, projections.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := projections.NewProjector(js, store, projections.ProjectorOptions{MaxBatch: 2048})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	l := &Live{Store: store, P: p, Dir: dir}
	stopped := false
	l.Stop = func() {
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
	t.Cleanup(l.Stop)
	return l
}

// Wait waits until the projector has applied seq.
func (l *Live) Wait(t testing.TB, seq uint64) {
	t.Helper()
	ctx := Ctx(t, 60*time.Second)
	if err := l.P.WaitApplied(ctx, seq); err != nil {
		t.Fatal(err)
	}
}

// GenOptions shape a generated history.
type GenOptions struct {
	Seed    uint64
	Events  int
	Tenants int
	Start   time.Time
	// TZ is the zone of the daily token limit ("" for UTC).
	TZ string
}

// generator produces a deterministic history using every event type:
// quotas (set, replaced, deleted), usage (with duplicates resent in other
// messages, corrections, named actions, costs), reservations reconciled,
// released and expired, retry signals, workflows, counter resets, plans,
// an invalid event now and then, events on a subject of a class they do not
// belong to and events on another tenant's subject.
type generator struct {
	rng     *rand.Rand
	now     time.Time
	n       int
	tenants []*genTenant
	out     []Batch
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

// Generate returns a deterministic history of about o.Events events.
func Generate(o GenOptions) []Batch { return newGenerator(o).run() }

func newGenerator(o GenOptions) *generator {
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
	g.out = append(g.out, Batch{Tenant: tenant, Class: class, Events: evs})
}

func (g *generator) ev(tn *genTenant, prefix string, d events.Dimensions, p events.Payload) events.Event {
	ev := events.New(g.id(prefix), tn.name, g.tick(), d, p)
	if d != nil {
		ev.Groups = g.groups(d)
	}
	return ev
}

// run generates about o.Events events.
func (g *generator) run() []Batch {
	for _, tn := range g.tenants {
		for _, q := range genQuotas(g.tz) {
			g.emit(tn.name, events.ClassAdmin, g.ev(tn, "q", nil, &events.QuotaSet{Quota: q}))
			tn.quotas = append(tn.quotas, q.ID)
		}
	}
	for g.events < g.n {
		tn := g.tenants[g.rng.IntN(len(g.tenants))]
		switch r := g.rng.IntN(1000); {
		case r < 10: // on a subject of another class: refused, the rest of the message folds
			g.misplaced(tn)
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

// misplaced emits events on their own tenant's subject of a class they do
// not belong to (events.CheckPlacement), mostly as a producer allowed only
// on the tenant's usage subject could publish them, next to usage that
// folds. Had a fold taken them, the tenant's quotas, counters, reservations,
// workflows or totals would differ.
func (g *generator) misplaced(tn *genTenant) {
	use := g.ev(tn, "u", g.dims(), &events.UsageRecorded{Amounts: g.amounts()})
	switch g.rng.IntN(4) {
	case 0: // a quota of its own, and its counters reset
		q := genQuotas(g.tz)[g.rng.IntN(3)]
		q.Limits[0].Max *= 1000
		g.emit(tn.name, events.ClassUsage, use,
			g.ev(tn, "mq", nil, &events.QuotaSet{Quota: q}),
			g.ev(tn, "mcr", nil, &events.CounterReset{Quota: q.ID, Reason: "forged"}))
	case 1: // a reservation, reconciled: usage in the totals if it were folded
		id := g.id("mres")
		at := g.tick()
		d := g.dims()
		g.emit(tn.name, events.ClassUsage,
			g.ev(tn, "mrc", d, &events.ReservationCreated{Reservation: id, Estimate: g.amounts(), ExpiresAt: at.Add(time.Minute)}),
			use,
			g.ev(tn, "mrr", nil, &events.ReservationReconciled{Reservation: id, Actual: g.amounts()}))
	case 2: // a real open reservation released, a real workflow ended
		evs := []events.Event{use}
		if len(tn.open) > 0 {
			evs = append(evs, g.ev(tn, "mrx", nil, &events.ReservationReleased{Reservation: tn.open[g.rng.IntN(len(tn.open))], Reason: "forged"}))
		}
		if len(tn.workflows) > 0 {
			evs = append(evs, g.ev(tn, "mwe", nil, &events.WorkflowEnded{Workflow: tn.workflows[g.rng.IntN(len(tn.workflows))]}))
		}
		g.emit(tn.name, events.ClassUsage, evs...)
	default: // usage on the admin subject, a correction on the decision subject
		g.emit(tn.name, events.ClassAdmin, use)
		if len(tn.usage) > 0 {
			old := tn.usage[g.rng.IntN(len(tn.usage))]
			g.emit(tn.name, events.ClassDecision, g.ev(tn, "mc", old.Dims, &events.UsageCorrected{Corrects: old.ID, Delta: events.Amounts{InputTokens: 1000}}))
		}
		return
	}
	tn.usage = append(tn.usage, use)
}

func CountEvents(bs []Batch) int {
	n := 0
	for _, b := range bs {
		n += len(b.Events)
	}
	return n
}

func Digest(t testing.TB, s *projections.Store) *replay.Digest {
	t.Helper()
	d, err := replay.DigestStore(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TS(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func Ev(id, tenant, at string, d events.Dimensions, p events.Payload) events.Event {
	return events.New(id, tenant, TS(at), d, p)
}

func Who(user, model string) events.Dimensions {
	return events.Dimensions{"user": user, "model": model}
}

// BillingFixture is a hand-made history around the two DST changes of 2026
// in Europe/Berlin (29 March, clocks 02:00 -> 03:00; 25 October, 03:00 ->
// 02:00): events on both sides of every period boundary, a duplicate with
// other amounts, a correction, reservations reconciled inside and after the
// period, released, expired and never settled, an invalid event and one on
// another tenant's subject.
func BillingFixture() []Batch {
	rec := func(id, tenant, at string, d events.Dimensions, a events.Amounts) events.Event {
		return Ev(id, tenant, at, d, &events.UsageRecorded{Amounts: a})
	}
	res := func(id, tenant, at string, d events.Dimensions, rid string, est events.Amounts) events.Event {
		return Ev(id, tenant, at, d, &events.ReservationCreated{Reservation: rid, Estimate: est, ExpiresAt: TS(at).Add(time.Hour)})
	}
	u, dec, adm := events.ClassUsage, events.ClassDecision, events.ClassAdmin
	return []Batch{
		{"acme", adm, []events.Event{Ev("q1", "acme", "2026-03-27T12:00:00Z", nil, &events.QuotaSet{Quota: events.Quota{ID: "daily", Limits: []events.Limit{{Metric: events.MetricTokens, Max: 100000, Window: events.Window{Kind: events.Calendar, Unit: events.UnitDay, TZ: "Europe/Berlin"}}}}})}},
		{"acme", u, []events.Event{
			rec("u1", "acme", "2026-03-27T22:30:00Z", Who("ana", "gpt-4o"), events.Amounts{InputTokens: 100, OutputTokens: 50, Requests: 1}),                                                    // 23:30 CET on the 27th: before
			rec("u2", "acme", "2026-03-27T23:00:00Z", Who("ana", "gpt-4o"), events.Amounts{InputTokens: 200, OutputTokens: 100, Requests: 1, Cost: 1500, Actions: events.Counts{"new_run": 1}}), // 00:00 CET on the 28th: first instant
		}},
		{"acme", dec, []events.Event{res("r1c", "acme", "2026-03-27T21:00:00Z", Who("ben", "claude"), "r1", events.Amounts{Tokens: 1000})}},
		{"acme", dec, []events.Event{Ev("r1r", "acme", "2026-03-28T08:00:00Z", nil, &events.ReservationReconciled{Reservation: "r1", Actual: events.Amounts{InputTokens: 300, OutputTokens: 200, Requests: 1}})}},
		{"acme", u, []events.Event{
			rec("u3", "acme", "2026-03-28T22:59:59Z", Who("ben", "claude"), events.Amounts{Tokens: 5000, Requests: 1}),                                                            // 23:59:59 CET on the 28th
			rec("u4", "acme", "2026-03-28T23:00:00Z", Who("ana", "gpt-4o"), events.Amounts{InputTokens: 10, OutputTokens: 5, Requests: 1, Actions: events.Counts{"ai_query": 2}}), // 00:00 CET on the 29th
		}},
		{"beta", u, []events.Event{rec("v1", "beta", "2026-03-29T01:30:00Z", Who("cai", "gpt-4o"), events.Amounts{InputTokens: 1000, OutputTokens: 1000, Requests: 2, Cost: 20000})}}, // 03:30 CEST
		{"acme", u, []events.Event{
			rec("u2", "acme", "2026-03-27T23:00:00Z", Who("ana", "gpt-4o"), events.Amounts{InputTokens: 9999, Requests: 9}),               // a duplicate: the first u2 counts
			rec("u5", "acme", "2026-03-29T21:59:59Z", Who("ana", "gpt-4o"), events.Amounts{InputTokens: 1, OutputTokens: 1, Requests: 1}), // 23:59:59 CEST: last instant
		}},
		{"acme", u, []events.Event{rec("u6", "acme", "2026-03-29T22:00:00Z", Who("ana", "gpt-4o"), events.Amounts{Tokens: 777, Requests: 1})}}, // 00:00 CEST on the 30th: after
		{"acme", u, []events.Event{Ev("c1", "acme", "2026-03-29T10:00:00Z", Who("ana", "gpt-4o"), &events.UsageCorrected{Corrects: "u2", Delta: events.Amounts{InputTokens: -50, Cost: -500}, Reason: "re-priced"})}},
		{"acme", dec, []events.Event{res("r2c", "acme", "2026-03-29T12:00:00Z", Who("ana", "gpt-4o"), "r2", events.Amounts{InputTokens: 500, Requests: 1})}},
		{"acme", dec, []events.Event{Ev("r2x", "acme", "2026-03-29T12:10:00Z", nil, &events.ReservationReleased{Reservation: "r2", Reason: "never ran"})}},
		{"acme", dec, []events.Event{res("r3c", "acme", "2026-03-29T20:00:00Z", Who("ben", "claude"), "r3", events.Amounts{Tokens: 2000})}},
		{"beta", dec, []events.Event{res("r4c", "beta", "2026-03-29T21:00:00Z", Who("cai", "gpt-4o"), "r4", events.Amounts{Tokens: 700, Actions: events.Counts{"new_run": 1}})}},
		{"beta", dec, []events.Event{res("r5c", "beta", "2026-03-28T10:00:00Z", Who("dee", "llama"), "r5", events.Amounts{Tokens: 50})}},
		{"beta", dec, []events.Event{Ev("r5e", "beta", "2026-03-28T10:05:00Z", nil, &events.ReservationExpired{Reservation: "r5"})}},
		{"acme", u, []events.Event{rec("bad", "acme", "2026-03-28T12:00:00Z", Who("ana", "gpt-4o"), events.Amounts{Tokens: -1})}},
		{"beta", u, []events.Event{rec("stray", "acme", "2026-03-28T12:00:00Z", Who("ana", "gpt-4o"), events.Amounts{Tokens: 31337})}},
		{"acme", dec, []events.Event{res("r6c", "acme", "2026-03-30T01:00:00Z", Who("ana", "gpt-4o"), "r6", events.Amounts{Tokens: 10})}},
		{"acme", dec, []events.Event{Ev("r3r", "acme", "2026-03-30T00:30:00Z", nil, &events.ReservationReconciled{Reservation: "r3", Actual: events.Amounts{Tokens: 1800, Requests: 1}})}},
		{"beta", u, []events.Event{rec("v2", "beta", "2026-03-28T05:00:00Z", Who("dee", "llama"), events.Amounts{Tokens: 42, Requests: 1})}}, // late, but in the period
		// The end of DST: 02:00-03:00 local happens twice on 25 October.
		{"acme", u, []events.Event{
			rec("f1", "acme", "2026-10-24T21:59:59Z", Who("ana", "gpt-4o"), events.Amounts{Tokens: 1, Requests: 1}),      // 23:59:59 CEST on the 24th: before
			rec("f2", "acme", "2026-10-24T22:00:00Z", Who("ana", "gpt-4o"), events.Amounts{Tokens: 10, Requests: 1}),     // 00:00 CEST on the 25th
			rec("f3", "acme", "2026-10-25T00:30:00Z", Who("ana", "gpt-4o"), events.Amounts{Tokens: 100, Requests: 1}),    // 02:30 CEST
			rec("f4", "acme", "2026-10-25T01:30:00Z", Who("ana", "gpt-4o"), events.Amounts{Tokens: 1000, Requests: 1}),   // 02:30 CET, an hour later
			rec("f5", "acme", "2026-10-25T22:59:59Z", Who("ben", "claude"), events.Amounts{Tokens: 10000, Requests: 1}),  // 23:59:59 CET on the 25th
			rec("f6", "acme", "2026-10-25T23:00:00Z", Who("ben", "claude"), events.Amounts{Tokens: 100000, Requests: 1}), // 00:00 CET on the 26th: after
		}},
	}
}

// WhatIfFixture: one tenant, a generous recorded quota that the proposal
// replaces, and calls around the proposed limits. The expected denials and
// warnings are worked out by hand in TestWhatIf.
func WhatIfFixture() []Batch {
	u := func(id, at, user string, tokens int64) Batch {
		return Batch{"acme", events.ClassUsage, []events.Event{Ev(id, "acme", at, Who(user, "m"), &events.UsageRecorded{Amounts: events.Amounts{Tokens: tokens, Requests: 1}})}}
	}
	d := func(id, at string, dims events.Dimensions, p events.Payload) Batch {
		return Batch{"acme", events.ClassDecision, []events.Event{Ev(id, "acme", at, dims, p)}}
	}
	day := events.Window{Kind: events.Calendar, Unit: events.UnitDay}
	return []Batch{
		{"acme", events.ClassAdmin, []events.Event{Ev("q0", "acme", "2026-02-01T00:00:00Z", nil, &events.QuotaSet{Quota: events.Quota{ID: "tokens-day", Split: []string{"user"}, Limits: []events.Limit{{Metric: events.MetricTokens, Max: 1_000_000, Window: day}}}})}},
		u("e0", "2026-02-01T05:00:00Z", "ana", 300), // before the period: fills the window, not judged
		u("e1", "2026-02-01T07:00:00Z", "ana", 400),
		u("e2", "2026-02-01T07:10:00Z", "ana", 200),
		u("e3", "2026-02-01T07:20:00Z", "ana", 200),
		u("e4", "2026-02-01T07:30:00Z", "ana", 50),
		d("e5", "2026-02-01T08:00:00Z", Who("ben", "m"), &events.ReservationCreated{Reservation: "r1", Estimate: events.Amounts{Tokens: 1200, Requests: 1}, ExpiresAt: TS("2026-02-01T09:00:00Z")}),
		d("e6", "2026-02-01T08:05:00Z", nil, &events.ReservationReconciled{Reservation: "r1", Actual: events.Amounts{Tokens: 1100, Requests: 1}}),
		u("e7", "2026-02-01T08:10:00Z", "ben", 300),
		d("e8", "2026-02-01T09:00:00Z", Who("ana", "m"), &events.WorkflowBegun{Workflow: "w1"}),
		d("e9", "2026-02-01T09:01:00Z", nil, &events.WorkflowStepped{Workflow: "w1", Step: 1}),
		d("e10", "2026-02-01T09:02:00Z", nil, &events.WorkflowStepped{Workflow: "w1", Step: 2}),
		d("e11", "2026-02-01T09:03:00Z", nil, &events.WorkflowStepped{Workflow: "w1", Step: 3}),
		d("e12", "2026-02-01T09:04:00Z", nil, &events.WorkflowStepped{Workflow: "w1", Step: 4}),
		d("e13", "2026-02-01T10:00:00Z", Who("ben", "m"), &events.WorkflowBegun{Workflow: "w2"}),
		d("e14", "2026-02-01T10:01:00Z", nil, &events.WorkflowStepped{Workflow: "w2", Step: 1}),
		d("e15", "2026-02-01T10:02:00Z", nil, &events.WorkflowEnded{Workflow: "w1"}),
		{"acme", events.ClassAdmin, []events.Event{Ev("qd", "acme", "2026-02-01T12:00:00Z", nil, &events.QuotaDeleted{Quota: "soft-req"})}}, // recorded: ignored
		u("e16", "2026-02-02T01:00:00Z", "ana", 600),
		u("e17", "2026-02-02T01:10:00Z", "ana", 300),
		d("e18", "2026-02-02T02:00:00Z", Who("ana", "m"), &events.WorkflowBegun{Workflow: "w3"}),
		{"acme", events.ClassUsage, []events.Event{Ev("e19", "acme", "2026-02-02T03:00:00Z", Who("ana", "m"), &events.UsageCorrected{Corrects: "e3", Delta: events.Amounts{Tokens: 50}})}},
		u("e20", "2026-02-02T04:00:00Z", "ana", 60),
		u("e21", "2026-02-03T01:00:00Z", "ana", 5000), // after the period
	}
}

func WhatIfProposal() replay.Proposal {
	day := events.Window{Kind: events.Calendar, Unit: events.UnitDay}
	return replay.Proposal{"acme": {
		{ID: "tokens-day", Split: []string{"user"}, Limits: []events.Limit{{Metric: events.MetricTokens, Max: 1000, Window: day}}, WarnPercent: 80},
		{ID: "wf", Limits: []events.Limit{{Metric: events.MetricWorkflows, Max: 1, Window: day}}, MaxSteps: 2},
		{ID: "soft-req", Split: []string{"user"}, Limits: []events.Limit{{Metric: events.MetricRequests, Max: 2, Window: events.Window{Kind: events.Sliding, Seconds: 3600}}}, WarnPercent: 50, Enforcement: events.Soft},
	}}
}
