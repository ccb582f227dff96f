package projections

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/ledgerworks/ledger/events"
)

// -seed runs the randomised tests with one seed (to reproduce a failure);
// -seed=-1 adds one taken from the clock, printed. By default they run over
// fixed seeds only, so the suite is deterministic.
var seedFlag = flag.Int64("seed", 0, "seed for the randomised projection tests (-1: one from the clock)")

func testSeeds(fixed ...uint64) []uint64 {
	switch s := *seedFlag; {
	case s > 0:
		return []uint64{uint64(s)}
	case s == -1:
		return append(fixed, uint64(time.Now().UnixNano()))
	}
	return fixed
}

func openStore(tb testing.TB, dir string) *Store {
	tb.Helper()
	s, err := OpenStore(dir, StoreOptions{CacheBytes: 8 << 20, MemTableBytes: 4 << 20})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// newStore opens a store in a fresh directory, closed when the test ends.
func newStore(tb testing.TB) *Store {
	tb.Helper()
	s := openStore(tb, tb.TempDir())
	tb.Cleanup(func() { s.Close() })
	return s
}

// seed 003's operation costs.
var seed003Costs = map[string]int64{"query": 1, "embedding": 5, "vector_search": 10, "write": 2, "transaction": 3}

// catalogue is the quotas of the randomised tests: every window kind, zones
// with DST, group scopes, splits, costs.
func catalogue() []events.Quota {
	return []events.Quota{
		{ID: "sliding", Split: []string{"user"}, Limits: []events.Limit{
			limitOf(events.MetricTokens, 100000, slidingW(60)),
			limitOf(events.MetricRequests, 1000, slidingW(3600)),
		}},
		{ID: "calendar", Scope: map[string]string{"group": "staff"}, Split: []string{"user", "model"}, Limits: []events.Limit{
			limitOf(events.MetricTokens, 500000, calendarW(events.UnitDay, "America/New_York")),
			limitOf(events.MetricCost, 1e9, calendarW(events.UnitMonth, "Europe/Berlin")),
			limitOf(events.MetricInputTokens, 50000, calendarW(events.UnitHour, "America/New_York")),
			limitOf(events.ActionMetric("ai_query"), 100, calendarW(events.UnitWeek, "")),
		}},
		{ID: "rolling", Split: []string{"user"}, Limits: []events.Limit{
			limitOf(events.MetricRequests, 50, rollingW(600)),
			limitOf(events.MetricTokens, 200000, events.Window{Kind: events.Rolling, Unit: events.UnitHour}),
		}},
		{ID: "costs", Costs: seed003Costs, Limits: []events.Limit{
			limitOf(events.MetricTokens, 1e7, calendarW(events.UnitWeek, "Europe/Berlin")),
			limitOf(events.MetricWorkflows, 20, calendarW(events.UnitDay, "")),
		}},
		{ID: "model", Scope: map[string]string{"model": "m1"}, Limits: []events.Limit{limitOf(events.MetricTokens, 100000, slidingW(600))}},
	}
}

// generator makes a random but valid event history: usage, reservations and
// their settlements, workflows, retry signals, resets, quota edits and
// deletions, plans. A fifth of the events arrive up to two minutes late.
type generator struct {
	r       *rand.Rand
	full    bool // all event types; else usage only
	now     time.Time
	tenants []string
	n       int
	open    map[string][]string // reservation IDs per tenant
	closed  map[string][]string
	wfs     map[string][]string
	gone    map[string][]string // deleted quota IDs per tenant
}

func newGenerator(seed uint64, full bool, tenants ...string) *generator {
	return &generator{
		r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), full: full,
		// Crosses a month end (Berlin and New York) and New York's fall back.
		now:     time.Date(2024, 10, 30, 20, 0, 0, 0, time.UTC),
		tenants: tenants,
		open:    map[string][]string{}, closed: map[string][]string{}, wfs: map[string][]string{}, gone: map[string][]string{},
	}
}

// setup returns the quota definitions every tenant starts with.
func (g *generator) setup() []events.Event {
	var out []events.Event
	for _, tn := range g.tenants {
		for _, q := range catalogue() {
			out = append(out, g.make(tn, g.now.Add(-time.Hour), nil, nil, &events.QuotaSet{Quota: q}))
		}
	}
	return out
}

func (g *generator) make(tenant string, when time.Time, d events.Dimensions, groups []string, p events.Payload) events.Event {
	g.n++
	ev := events.Event{ID: "e" + strconv.Itoa(g.n), Type: p.EventType(), Tenant: tenant, Dims: d, Groups: groups, Time: when, Payload: p}
	if err := ev.Validate(); err != nil {
		panic(fmt.Sprintf("generated an invalid event: %v: %+v", err, ev))
	}
	return ev
}

func (g *generator) pick(xs ...string) string { return xs[g.r.IntN(len(xs))] }

func (g *generator) amounts() events.Amounts {
	a := events.Amounts{Requests: 1, Cost: g.r.Int64N(5000)}
	if g.r.IntN(3) == 0 {
		a.InputTokens, a.OutputTokens = g.r.Int64N(2000), g.r.Int64N(500)
	} else {
		a.Tokens = g.r.Int64N(3000)
	}
	if g.r.IntN(4) == 0 {
		a.Actions = map[string]int64{"ai_query": 1 + g.r.Int64N(2)}
	}
	return a
}

// next returns the next event.
func (g *generator) next() events.Event {
	if g.r.IntN(10) < 7 {
		g.now = g.now.Add(time.Duration(g.r.Int64N(int64(5 * time.Second))))
	} else {
		g.now = g.now.Add(time.Duration(g.r.Int64N(int64(10 * time.Minute))))
	}
	when := g.now.Truncate(time.Millisecond)
	if g.r.IntN(5) == 0 {
		when = when.Add(-time.Duration(g.r.Int64N(int64(2 * time.Minute))))
	}
	tn := g.tenants[g.r.IntN(len(g.tenants))]
	d := dims("user", g.pick("u0", "u1", "u2", "u3", "u4"), "model", g.pick("m0", "m1", "m2"), "operation", g.pick("query", "embedding", "vector_search", "write", "transaction", "other"))
	var groups []string
	switch g.r.IntN(3) {
	case 0:
		groups = []string{"staff"}
	case 1:
		groups = []string{"eng", "staff"}
	}
	if !g.full {
		return g.make(tn, when, d, groups, &events.UsageRecorded{Amounts: g.amounts()})
	}
	switch k := g.r.IntN(100); {
	case k < 50:
		return g.make(tn, when, d, groups, &events.UsageRecorded{Amounts: g.amounts(), Decided: g.r.IntN(2) == 0})
	case k < 55:
		delta := events.Amounts{Tokens: g.r.Int64N(400) - 200, Cost: g.r.Int64N(100) - 50}
		return g.make(tn, when, d, groups, &events.UsageCorrected{Corrects: "e" + strconv.Itoa(1+g.r.IntN(g.n+1)), Delta: delta})
	case k < 67:
		id := "r" + strconv.Itoa(g.n)
		if g.r.IntN(20) == 0 && len(g.open[tn]) > 0 {
			id = g.open[tn][0] // created twice
		} else {
			g.open[tn] = append(g.open[tn], id)
		}
		est := g.amounts()
		return g.make(tn, when, d, groups, &events.ReservationCreated{Reservation: id, Estimate: est, ExpiresAt: when.Add(5 * time.Minute)})
	case k < 78:
		var id string
		if len(g.open[tn]) > 0 && g.r.IntN(10) > 0 {
			i := g.r.IntN(len(g.open[tn]))
			id = g.open[tn][i]
			g.open[tn] = slices.Delete(g.open[tn], i, i+1)
			g.closed[tn] = append(g.closed[tn], id)
		} else if len(g.closed[tn]) > 0 {
			id = g.closed[tn][g.r.IntN(len(g.closed[tn]))] // settled twice
		} else {
			id = "unknown"
		}
		switch g.r.IntN(3) {
		case 0:
			return g.make(tn, when, d, groups, &events.ReservationReconciled{Reservation: id, Actual: g.amounts()})
		case 1:
			return g.make(tn, when, d, groups, &events.ReservationReleased{Reservation: id})
		default:
			return g.make(tn, when, d, groups, &events.ReservationExpired{Reservation: id})
		}
	case k < 84:
		switch {
		case len(g.wfs[tn]) == 0 || g.r.IntN(3) == 0:
			id := "w" + strconv.Itoa(g.n)
			g.wfs[tn] = append(g.wfs[tn], id)
			return g.make(tn, when, d, groups, &events.WorkflowBegun{Workflow: id})
		case g.r.IntN(2) == 0:
			return g.make(tn, when, d, groups, &events.WorkflowStepped{Workflow: g.wfs[tn][g.r.IntN(len(g.wfs[tn]))], Step: 1})
		default:
			i := g.r.IntN(len(g.wfs[tn]))
			id := g.wfs[tn][i]
			g.wfs[tn] = slices.Delete(g.wfs[tn], i, i+1)
			return g.make(tn, when, d, groups, &events.WorkflowEnded{Workflow: id})
		}
	case k < 88:
		key := dims("model", g.pick("m0", "m1"), "location", g.pick("eu", "us"))
		if g.r.IntN(2) == 0 {
			return g.make(tn, when, key, nil, &events.RetrySignalled{RetryUntil: when.Add(time.Duration(g.r.Int64N(int64(time.Minute)))), RetryDelay: "30s"})
		}
		return g.make(tn, when, key, nil, &events.RetryCleared{})
	case k < 91:
		qs := catalogue()
		q := qs[g.r.IntN(len(qs))]
		split := ""
		if len(q.Split) == 1 && g.r.IntN(2) == 0 {
			split = g.pick("u0", "u1", "u2")
		}
		return g.make(tn, when, nil, nil, &events.CounterReset{Quota: q.ID, Split: split})
	case k < 95:
		// Edit a limit's maximum, or create again a deleted quota.
		qs := catalogue()
		q := qs[g.r.IntN(len(qs))]
		if gone := g.gone[tn]; len(gone) > 0 && g.r.IntN(2) == 0 {
			id := gone[0]
			g.gone[tn] = gone[1:]
			for _, c := range qs {
				if c.ID == id {
					q = c
				}
			}
		}
		q.Limits[0].Max = 1 + g.r.Int64N(1e6)
		return g.make(tn, when, nil, nil, &events.QuotaSet{Quota: q})
	case k < 97:
		qs := catalogue()
		id := qs[g.r.IntN(len(qs))].ID
		g.gone[tn] = append(g.gone[tn], id)
		return g.make(tn, when, nil, nil, &events.QuotaDeleted{Quota: id})
	default:
		return g.make(tn, when, nil, nil, &events.PlanSet{Project: g.pick("", "p1"), RunTimeoutMs: g.r.Int64N(100000)})
	}
}

// history returns the setup and n random events.
func (g *generator) history(n int) []events.Event {
	evs := g.setup()
	for range n {
		evs = append(evs, g.next())
	}
	return evs
}

// refFold folds events one at a time into fresh tenant states and a map.
type refFold struct {
	tenants map[string]*Tenant
	c       mapCounters
	totals  map[TotalKey]int64
}

func newRefFold() *refFold {
	return &refFold{tenants: map[string]*Tenant{}, c: mapCounters{}, totals: map[TotalKey]int64{}}
}

func (r *refFold) tenant(name string) *Tenant {
	t, ok := r.tenants[name]
	if !ok {
		t = NewTenant(name)
		r.tenants[name] = t
	}
	return t
}

func (r *refFold) apply(ev *events.Event, seq uint64) {
	d := NewDeltas()
	Evolve(r.tenant(ev.Tenant), ev, Meta{Seq: seq, Decision: events.ClassOf(ev.Type) == events.ClassDecision}, d)
	r.c.add(d)
	for k, n := range d.Totals {
		r.totals[k] += n
	}
}

// storeFold folds events into a store in random-sized batches, each written
// as one commit with the deltas aggregated over the batch.
func storeFold(t *testing.T, s *Store, r *rand.Rand, evs []events.Event) map[string]*Tenant {
	t.Helper()
	tenants := map[string]*Tenant{}
	for i := 0; i < len(evs); {
		n := 1 + r.IntN(300)
		c := &Commit{Deltas: NewDeltas()}
		dirty := map[string]*Tenant{}
		for ; n > 0 && i < len(evs); n, i = n-1, i+1 {
			ev := &evs[i]
			tn, ok := tenants[ev.Tenant]
			if !ok {
				tn = NewTenant(ev.Tenant)
				tenants[ev.Tenant] = tn
			}
			dirty[ev.Tenant] = tn
			seq := uint64(i + 1)
			Evolve(tn, ev, Meta{Seq: seq, Decision: events.ClassOf(ev.Type) == events.ClassDecision}, c.Deltas)
			c.Seen = append(c.Seen, SeenID{Tenant: ev.Tenant, ID: ev.ID, Seq: seq})
			c.Applied = seq
		}
		for _, name := range slices.Sorted(maps.Keys(dirty)) {
			c.Tenants = append(c.Tenants, dirty[name])
		}
		if err := s.Write(c); err != nil {
			t.Fatal(err)
		}
	}
	return tenants
}

// limitIndex groups a reference's counters by limit (the key with bucket 0,
// not reserved): bucket -> {used, reserved}.
type limitIndex map[CounterKey]map[int64]*[2]int64

func indexOf(ref mapCounters) limitIndex {
	ix := limitIndex{}
	for k, n := range ref {
		lk := k
		lk.Bucket, lk.Reserved = 0, false
		bs := ix[lk]
		if bs == nil {
			bs = map[int64]*[2]int64{}
			ix[lk] = bs
		}
		v := bs[k.Bucket]
		if v == nil {
			v = new([2]int64)
			bs[k.Bucket] = v
		}
		if k.Reserved {
			v[1] += n
		} else {
			v[0] += n
		}
	}
	return ix
}

// sum is mapCounters.Sum over the index.
func (ix limitIndex) sum(k CounterKey, from, to int64) (used, reserved, oldest int64) {
	k.Bucket, k.Reserved = 0, false
	for b, v := range ix[k] {
		if b < from || b > to {
			continue
		}
		used += v[0]
		reserved += v[1]
		if (v[0] != 0 || v[1] != 0) && (oldest == 0 || b < oldest) {
			oldest = b
		}
	}
	return used, reserved, oldest
}

// checkCounters compares every counter of the store with a reference: each
// bucket alone, random ranges of buckets (with the oldest bucket), and the
// number of non-zero counters, so the store holds nothing more.
func checkCounters(t *testing.T, s *Store, ref mapCounters, r *rand.Rand) {
	t.Helper()
	ix := indexOf(ref)
	nonzero := 0
	for _, n := range ref {
		if n != 0 {
			nonzero++
		}
	}
	for lk, bs := range ix {
		buckets := slices.Sorted(maps.Keys(bs))
		for _, b := range buckets {
			wu, wr, wo := ix.sum(lk, b, b)
			if u, rs, o := s.Sum(lk, b, b); u != wu || rs != wr || o != wo {
				t.Fatalf("limit %+v bucket %d: store has used %d reserved %d oldest %d, reference %d %d %d", lk, b, u, rs, o, wu, wr, wo)
			}
		}
		lo, hi := buckets[0], buckets[len(buckets)-1]
		ranges := [][2]int64{{lo, hi}, {lo - 1, hi + 1}, {hi + 1, hi + 1000}, {lo - 1000, lo - 1}}
		for range 10 {
			a, b := buckets[r.IntN(len(buckets))], buckets[r.IntN(len(buckets))]
			ranges = append(ranges, [2]int64{min(a, b), max(a, b)}, [2]int64{min(a, b) + 1, max(a, b) - 1})
		}
		for _, rg := range ranges {
			wu, wr, wo := ix.sum(lk, rg[0], rg[1])
			if u, rs, o := s.Sum(lk, rg[0], rg[1]); u != wu || rs != wr || o != wo {
				t.Fatalf("limit %+v over %d..%d: store has used %d reserved %d oldest %d, reference %d %d %d", lk, rg[0], rg[1], u, rs, o, wu, wr, wo)
			}
		}
	}
	if got := countNonzeroCounters(t, s); got != nonzero {
		t.Fatalf("store holds %d non-zero counters, reference %d", got, nonzero)
	}
}

func countNonzeroCounters(t *testing.T, s *Store) int {
	t.Helper()
	it, err := s.DB().NewIter(&pebble.IterOptions{LowerBound: []byte{prefixCounter}, UpperBound: []byte{prefixCounter + 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	n := 0
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			t.Fatal(err)
		}
		if decodeInt(v) != 0 {
			n++
		}
	}
	if err := it.Error(); err != nil {
		t.Fatal(err)
	}
	return n
}

func checkTotals(t *testing.T, s *Store, tenants []string, want map[TotalKey]int64) {
	t.Helper()
	for _, tn := range tenants {
		got, err := s.Totals(tn)
		if err != nil {
			t.Fatal(err)
		}
		w := map[events.Metric]int64{}
		for k, n := range want {
			if k.Tenant == tn {
				w[k.Metric] = n
			}
		}
		if !reflect.DeepEqual(got, w) {
			t.Fatalf("totals of %s: store %v, reference %v", tn, got, w)
		}
	}
}

// checkTenant compares a stored tenant state with an in-memory one: both
// encode to the same bytes, and a decoded state is ready to fold on.
func checkTenant(t *testing.T, s *Store, want *Tenant) {
	t.Helper()
	got, err := s.LoadTenant(want.Name)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(snapshot(t, got), snapshot(t, want)) {
		t.Fatalf("stored state of %s differs from the folded one:\nstored %+v\nfolded %+v", want.Name, got, want)
	}
	if !slices.Equal(got.QuotaIDs(), want.QuotaIDs()) {
		t.Fatalf("quota order of %s: %v vs %v", want.Name, got.QuotaIDs(), want.QuotaIDs())
	}
}

// TestStoreMatchesModel: usage folded through Evolve and Store.Write in
// random batches gives, for every counter, what a model written from the
// quota rules alone gives.
func TestStoreMatchesModel(t *testing.T) {
	for _, seed := range testSeeds(1, 2) {
		t.Run(strconv.FormatUint(seed, 10), func(t *testing.T) {
			t.Parallel()
			t.Logf("seed %d (go test ./projections/ -run 'TestStoreMatchesModel' -seed=%d)", seed, seed)
			r := rand.New(rand.NewPCG(seed, 1))
			g := newGenerator(seed, false, "t", "t-2")
			evs := g.history(1500)
			s := newStore(t)
			tenants := storeFold(t, s, r, evs)

			// The model: every usage event, against every quota whose scope
			// it matches, in the bucket of its own time.
			model := mapCounters{}
			totals := map[TotalKey]int64{}
			qs := catalogue()
			for i := range evs {
				ev := &evs[i]
				u, ok := ev.Payload.(*events.UsageRecorded)
				if !ok {
					continue
				}
				totals[TotalKey{ev.Tenant, events.MetricTokens}] += u.TotalTokens()
				totals[TotalKey{ev.Tenant, events.MetricInputTokens}] += u.InputTokens
				totals[TotalKey{ev.Tenant, events.MetricOutputTokens}] += u.OutputTokens
				totals[TotalKey{ev.Tenant, events.MetricRequests}] += u.Requests
				totals[TotalKey{ev.Tenant, events.MetricCost}] += u.Cost
				for name, n := range u.Actions {
					totals[TotalKey{ev.Tenant, events.ActionMetric(name)}] += n
				}
				for _, q := range qs {
					if !modelMatches(q, ev) {
						continue
					}
					var split []string
					for _, d := range q.Split {
						split = append(split, ev.Dims[d])
					}
					for i, l := range q.Limits {
						if l.Window.Kind == events.Rolling {
							continue // state-dependent: covered by TestStoreMatchesFold
						}
						var n int64
						switch l.Metric {
						case events.MetricTokens:
							n = u.TotalTokens()
							if m, ok := q.Costs[ev.Dims["operation"]]; ok {
								n *= m
							}
						case events.MetricInputTokens:
							n = u.InputTokens
						case events.MetricCost:
							n = u.Cost
						case events.MetricRequests:
							n = u.Requests
						case events.ActionMetric("ai_query"):
							n = u.Actions["ai_query"]
						}
						k := CounterKey{Tenant: ev.Tenant, Quota: q.ID, Split: strings.Join(split, "/"), Limit: tenants[ev.Tenant].Quotas[q.ID].LimitKey(i), Bucket: Bucket(l.Window, ev.Time)}
						model[k] += n
					}
				}
			}
			for k, n := range totals {
				if n == 0 {
					delete(totals, k)
				}
			}
			checkModelCounters(t, s, model, r)
			checkTotals(t, s, g.tenants, totals)
		})
	}
}

func modelMatches(q events.Quota, ev *events.Event) bool {
	for k, v := range q.Scope {
		if k == "group" {
			if !slices.Contains(ev.Groups, v) {
				return false
			}
		} else if ev.Dims[k] != v {
			return false
		}
	}
	return true
}

// checkModelCounters checks the store against a model that covers the
// sliding and calendar limits only (and so no reservations).
func checkModelCounters(t *testing.T, s *Store, model mapCounters, r *rand.Rand) {
	t.Helper()
	ix := indexOf(model)
	if len(ix) < 20 {
		t.Fatalf("only %d limits were used: the generator is too narrow", len(ix))
	}
	for lk, bs := range ix {
		buckets := slices.Sorted(maps.Keys(bs))
		for _, b := range buckets {
			if u, rs, _ := s.Sum(lk, b, b); u != bs[b][0] || rs != 0 {
				t.Fatalf("limit %+v bucket %d: store %d %d, model %d 0", lk, b, u, rs, bs[b][0])
			}
		}
		for range 10 {
			a, b := buckets[r.IntN(len(buckets))], buckets[r.IntN(len(buckets))]
			from, to := min(a, b), max(a, b)
			wu, _, wo := ix.sum(lk, from, to)
			if u, rs, o := s.Sum(lk, from, to); u != wu || rs != 0 || o != wo {
				t.Fatalf("limit %+v over %d..%d: store %d %d %d, model %d 0 %d", lk, from, to, u, rs, o, wu, wo)
			}
		}
	}
}

// TestStoreMatchesFold: every event type, folded in random batches through
// Evolve and Store.Write, gives the counters, totals and tenant states of a
// fold one event at a time into a map.
func TestStoreMatchesFold(t *testing.T) {
	for _, seed := range testSeeds(1, 2) {
		t.Run(strconv.FormatUint(seed, 10), func(t *testing.T) {
			t.Parallel()
			t.Logf("seed %d (go test ./projections/ -run 'TestStoreMatchesFold' -seed=%d)", seed, seed)
			r := rand.New(rand.NewPCG(seed, 2))
			g := newGenerator(seed, true, "t", "t-2", "t0")
			evs := g.history(1500)
			s := newStore(t)
			tenants := storeFold(t, s, r, evs)

			ref := newRefFold()
			for i := range evs {
				ref.apply(&evs[i], uint64(i+1))
			}
			checkCounters(t, s, ref.c, r)
			for k, n := range ref.totals {
				if n == 0 {
					delete(ref.totals, k)
				}
			}
			checkTotals(t, s, g.tenants, ref.totals)
			for _, name := range g.tenants {
				checkTenant(t, s, ref.tenants[name])
				checkTenant(t, s, tenants[name])
			}
			if got, err := s.Applied(); err != nil || got != uint64(len(evs)) {
				t.Fatalf("applied %d (%v), want %d", got, err, len(evs))
			}
			for i := range evs {
				if ok, err := s.Seen(evs[i].Tenant, evs[i].ID); err != nil || !ok {
					t.Fatalf("event %s/%s not seen (%v)", evs[i].Tenant, evs[i].ID, err)
				}
			}
			if ok, _ := s.Seen("t", "never"); ok {
				t.Fatal("an event never written is seen")
			}
			if ok, _ := s.Seen("t-3", evs[0].ID); ok {
				t.Fatal("an event ID is seen for another tenant")
			}
		})
	}
}

// stream turns events into stream messages: runs of one tenant's events of
// one subject class, packed up to 8 to a message, with some retried
// messages (same event IDs again) and some that must be refused.
func stream(r *rand.Rand, evs []events.Event) ([]Message, error) {
	var msgs []Message
	seq := uint64(0)
	add := func(subject string, data []byte) {
		seq++
		msgs = append(msgs, Message{Seq: seq, Subject: subject, Data: data})
	}
	for i := 0; i < len(evs); {
		tn, class := evs[i].Tenant, events.ClassOf(evs[i].Type)
		j := i + 1
		for j < len(evs) && j-i < 1+r.IntN(8) && evs[j].Tenant == tn && events.ClassOf(evs[j].Type) == class {
			j++
		}
		data, err := events.EncodeBatch(evs[i:j])
		if err != nil {
			return nil, err
		}
		add(events.Subject(tn, class), data)
		switch r.IntN(40) {
		case 0: // a producer's retry, regrouped: counted once
			k := max(0, i-r.IntN(20))
			data, err := events.EncodeBatch(evs[k:j])
			if err != nil {
				return nil, err
			}
			if evs[k].Tenant == tn && events.ClassOf(evs[k].Type) == class {
				add(events.Subject(tn, class), data)
			}
		case 1: // garbage
			add(events.Subject(tn, class), []byte("not msgpack"))
		case 2: // another tenant's events on this tenant's subject
			add(events.Subject("intruder", class), data)
		}
		i = j
	}
	return msgs, nil
}

// applyChunks hands messages to the projector in random-sized chunks.
func applyChunks(t *testing.T, p *Projector, r *rand.Rand, msgs []Message) {
	t.Helper()
	for len(msgs) > 0 {
		n := min(len(msgs), 1+r.IntN(200))
		if err := p.Apply(msgs[:n]); err != nil {
			t.Fatal(err)
		}
		msgs = msgs[n:]
	}
}

type kv struct{ k, v []byte }

// dump returns every key and value of the store as a digest would see them:
// without counters that add up to zero (whether such a key exists depends on
// how messages fell into batches: a hold taken and given back in one batch is
// never written), and with tenant states in canonical form (the store writes
// Go maps in random order).
func dump(t *testing.T, s *Store) []kv {
	t.Helper()
	it, err := s.DB().NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out []kv
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			t.Fatal(err)
		}
		if it.Key()[0] == prefixCounter && decodeInt(v) == 0 {
			continue
		}
		if it.Key()[0] == prefixTenant {
			v = canonical(t, v)
		}
		out = append(out, kv{bytes.Clone(it.Key()), bytes.Clone(v)})
	}
	if err := it.Error(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRebuildResume: folding the stream in one pass, and folding it up to a
// random point, closing the store, reopening it and resuming (with some
// messages delivered again) end with the same store, byte for byte (but for
// counters at zero): counters, totals, seen IDs, tenant states and the
// applied sequence.
func TestRebuildResume(t *testing.T) {
	for _, seed := range testSeeds(1, 2) {
		t.Run(strconv.FormatUint(seed, 10), func(t *testing.T) {
			t.Parallel()
			t.Logf("seed %d (go test ./projections/ -run 'TestRebuildResume' -seed=%d)", seed, seed)
			r := rand.New(rand.NewPCG(seed, 3))
			g := newGenerator(seed, true, "t", "t-2", "t0")
			evs := g.history(1500)
			msgs, err := stream(r, evs)
			if err != nil {
				t.Fatal(err)
			}
			last := msgs[len(msgs)-1].Seq

			// One pass.
			one := newStore(t)
			p1, err := NewProjector(nil, one, ProjectorOptions{})
			if err != nil {
				t.Fatal(err)
			}
			applyChunks(t, p1, r, msgs)
			if p1.Rejected() == 0 {
				t.Fatal("no message was refused: the stream does not exercise refusals")
			}

			// Stop at a random point, reopen, resume.
			dir := t.TempDir()
			two := openStore(t, dir)
			cut := 1 + r.IntN(len(msgs)-1)
			p2, err := NewProjector(nil, two, ProjectorOptions{MaxTenants: 1})
			if err != nil {
				t.Fatal(err)
			}
			applyChunks(t, p2, r, msgs[:cut])
			if err := two.Close(); err != nil {
				t.Fatal(err)
			}
			two = openStore(t, dir)
			t.Cleanup(func() { two.Close() })
			if got, err := two.Applied(); err != nil || got != msgs[cut-1].Seq {
				t.Fatalf("reopened at %d (%v), want %d", got, err, msgs[cut-1].Seq)
			}
			p2, err = NewProjector(nil, two, ProjectorOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if p2.Applied() != msgs[cut-1].Seq {
				t.Fatalf("projector resumes after %d, want %d", p2.Applied(), msgs[cut-1].Seq)
			}
			// A consumer may deliver again what was applied: skipped.
			applyChunks(t, p2, r, msgs[max(0, cut-1-r.IntN(50)):])
			t.Logf("%d events in %d messages, resumed after message %d", len(evs), len(msgs), cut)

			for _, s := range []*Store{one, two} {
				if got, err := s.Applied(); err != nil || got != last {
					t.Fatalf("applied %d (%v), want %d", got, err, last)
				}
			}
			a, b := dump(t, one), dump(t, two)
			if len(a) != len(b) {
				t.Fatalf("one pass holds %d keys, resumed %d", len(a), len(b))
			}
			for i := range a {
				if !bytes.Equal(a[i].k, b[i].k) || !bytes.Equal(a[i].v, b[i].v) {
					t.Fatalf("key %d differs: one pass %q (%d bytes), resumed %q (%d bytes)", i, a[i].k, len(a[i].v), b[i].k, len(b[i].v))
				}
			}
			for _, name := range g.tenants {
				ta, err := one.LoadTenant(name)
				if err != nil {
					t.Fatal(err)
				}
				tb, err := two.LoadTenant(name)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(ta, tb) {
					t.Fatalf("tenant %s differs:\n%+v\n%+v", name, ta, tb)
				}
				x, _ := one.Totals(name)
				y, _ := two.Totals(name)
				if !reflect.DeepEqual(x, y) {
					t.Fatalf("totals of %s differ: %v vs %v", name, x, y)
				}
			}

			// And both equal the fold of every distinct valid event, once.
			ref := newRefFold()
			seen := map[string]bool{}
			for _, m := range msgs {
				tn, _, _ := ParseSubject(m.Subject)
				dec, err := events.DecodeBatch(m.Data)
				if err != nil {
					continue
				}
				for i := range dec {
					ev := &dec[i]
					if ev.Tenant != tn || seen[tn+"/"+ev.ID] {
						continue
					}
					seen[tn+"/"+ev.ID] = true
					ref.apply(ev, m.Seq)
				}
			}
			checkCounters(t, one, ref.c, r)
			for _, name := range g.tenants {
				tn := ref.tenant(name)
				tn.LastDecision = 0 // the reference does not observe subjects
				st, err := one.LoadTenant(name)
				if err != nil {
					t.Fatal(err)
				}
				if st.LastDecision == 0 {
					t.Errorf("tenant %s: no decision sequence recorded", name)
				}
				st.LastDecision = 0
				if !bytes.Equal(snapshot(t, st), snapshot(t, tn)) {
					t.Fatalf("tenant %s: projector state differs from the reference fold", name)
				}
			}
			for k := range seen {
				tn, id, _ := strings.Cut(k, "/")
				if ok, err := one.Seen(tn, id); err != nil || !ok {
					t.Fatalf("%s not seen (%v)", k, err)
				}
			}
		})
	}
}

// TestStoreTotals: totals add up across commits, per tenant, and one tenant's
// totals never include another's whose name it prefixes.
func TestStoreTotals(t *testing.T) {
	s := newStore(t)
	write := func(applied uint64, tenant string, a events.Amounts, sign int64) {
		d := NewDeltas()
		d.addTotals(tenant, a, sign)
		if err := s.Write(&Commit{Deltas: d, Applied: applied}); err != nil {
			t.Fatal(err)
		}
	}
	write(1, "acme", events.Amounts{Tokens: 100, Requests: 1, Cost: 7, Actions: map[string]int64{"new_run": 2}}, 1)
	write(2, "acme", events.Amounts{InputTokens: 30, OutputTokens: 20, Requests: 1}, 1)
	write(3, "acme2", events.Amounts{Tokens: 999}, 1)
	write(4, "acme", events.Amounts{Tokens: 10, Cost: 2}, -1)
	got, err := s.Totals("acme")
	if err != nil {
		t.Fatal(err)
	}
	want := map[events.Metric]int64{
		events.MetricTokens: 140, events.MetricInputTokens: 30, events.MetricOutputTokens: 20,
		events.MetricRequests: 2, events.MetricCost: 5, events.ActionMetric("new_run"): 2,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("totals of acme %v, want %v", got, want)
	}
	if got, _ := s.Totals("acme2"); !reflect.DeepEqual(got, map[events.Metric]int64{events.MetricTokens: 999}) {
		t.Errorf("totals of acme2 %v", got)
	}
	if got, _ := s.Totals("acm"); len(got) != 0 {
		t.Errorf("totals of acm %v", got)
	}
	if got, _ := s.Applied(); got != 4 {
		t.Errorf("applied %d", got)
	}
}

// TestStoreSeen: seen IDs are per tenant and survive a reopen, together with
// the applied sequence and what they counted.
func TestStoreSeen(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	if got, _ := s.Applied(); got != 0 {
		t.Fatalf("empty store applied %d", got)
	}
	if tn, err := s.LoadTenant("acme"); err != nil || tn.Name != "acme" || len(tn.QuotaIDs()) != 0 {
		t.Fatalf("empty store tenant %+v (%v)", tn, err)
	}
	k := CounterKey{Tenant: "acme", Quota: "q", Limit: "tokens|sliding:60", Bucket: 1718368496}
	d := NewDeltas()
	d.add(k, 5)
	if err := s.Write(&Commit{Deltas: d, Seen: []SeenID{{"acme", "e1", 7}, {"acme", "e2", 7}}, Applied: 7}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	defer s.Close()
	for _, c := range []struct {
		tenant, id string
		want       bool
	}{{"acme", "e1", true}, {"acme", "e2", true}, {"acme", "e3", false}, {"acme2", "e1", false}, {"acm", "e1", false}, {"acme", "e", false}} {
		if got, err := s.Seen(c.tenant, c.id); err != nil || got != c.want {
			t.Errorf("Seen(%s, %s) = %v (%v), want %v", c.tenant, c.id, got, err, c.want)
		}
	}
	if got, _ := s.Applied(); got != 7 {
		t.Errorf("applied %d after reopen, want 7", got)
	}
	if u, _, o := s.Sum(k, k.Bucket-59, k.Bucket); u != 5 || o != k.Bucket {
		t.Errorf("sum after reopen %d oldest %d", u, o)
	}
}

// TestStoreSumBounds: a sum covers exactly its buckets, usage and
// reservations apart, and never reaches into another limit, split, epoch or
// tenant whose key shares a prefix.
func TestStoreSumBounds(t *testing.T) {
	// The limit's keys in the memtable, in one flushed table with its
	// neighbours, and in tables of their own beside tables that hold only
	// neighbours (which the prefix bloom filters let reads skip); summed from
	// Pebble every time (a fresh counter cache per sum, or none).
	for _, layout := range []string{"memtable", "flushed", "tables"} {
		for _, cached := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/cache=%v", layout, cached), func(t *testing.T) {
				testStoreSumBounds(t, layout, cached)
			})
		}
	}
}

func testStoreSumBounds(t *testing.T, layout string, cached bool) {
	s := newStore(t)
	applied := uint64(0)
	write := func(d *Deltas) {
		t.Helper()
		applied++
		if err := s.Write(&Commit{Deltas: d, Applied: applied}); err != nil {
			t.Fatal(err)
		}
		if layout == "tables" {
			if err := s.DB().Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	sum := func(k CounterKey, from, to int64) (used, reserved, oldest int64) {
		if cached {
			s.counters = newCounterCache(16)
		} else {
			s.counters = nil
		}
		return s.Sum(k, from, to)
	}
	base := CounterKey{Tenant: "acme", Quota: "q", Split: "alice", Limit: "tokens|sliding:60"}
	d := NewDeltas()
	for b := int64(100); b < 110; b++ {
		k := base
		k.Bucket = b
		d.add(k, b)
		k.Reserved = true
		d.add(k, 1)
	}
	write(d)
	neighbours := []CounterKey{
		{Tenant: "acme2", Quota: "q", Split: "alice", Limit: "tokens|sliding:60"},
		{Tenant: "acm", Quota: "q", Split: "alice", Limit: "tokens|sliding:60"},
		{Tenant: "acme", Quota: "q2", Split: "alice", Limit: "tokens|sliding:60"},
		{Tenant: "acme", Quota: "q", Split: "alice2", Limit: "tokens|sliding:60"},
		{Tenant: "acme", Quota: "q", Split: "alic", Limit: "tokens|sliding:60"},
		{Tenant: "acme", Quota: "q", Split: "alice", Limit: "tokens|sliding:600"},
		{Tenant: "acme", Quota: "q", Epoch: 1, Split: "alice", Limit: "tokens|sliding:60"},
		{Tenant: "acme", Quota: "q", Epoch: 256, Split: "alice", Limit: "tokens|sliding:60"},
	}
	for _, k := range neighbours {
		d := NewDeltas()
		for b := int64(95); b < 115; b++ {
			k.Bucket = b
			d.add(k, 1000)
		}
		write(d)
	}
	if layout == "flushed" {
		if err := s.DB().Flush(); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		from, to            int64
		used, reserved, old int64
	}{
		{100, 109, 1045, 10, 100},
		{0, 1 << 40, 1045, 10, 100},
		{105, 105, 105, 1, 105},
		{103, 106, 103 + 104 + 105 + 106, 4, 103},
		{110, 200, 0, 0, 0},
		{110, 110, 0, 0, 0},
		{50, 99, 0, 0, 0},
		{109, 100, 0, 0, 0}, // empty range
	} {
		if u, r, o := sum(base, c.from, c.to); u != c.used || r != c.reserved || o != c.old {
			t.Errorf("Sum %d..%d = %d %d %d, want %d %d %d", c.from, c.to, u, r, o, c.used, c.reserved, c.old)
		}
	}
	// A bucket whose usage nets to zero is not the oldest; the operands that
	// net it are in a table (or memtable) of their own.
	d = NewDeltas()
	k := base
	k.Bucket = 100
	d.add(k, -100)
	k.Reserved = true
	d.add(k, -1)
	write(d)
	if u, r, o := sum(base, 100, 109); u != 945 || r != 9 || o != 101 {
		t.Errorf("after netting bucket 100 to zero: %d %d %d", u, r, o)
	}
	if u, r, o := sum(base, 100, 100); u != 0 || r != 0 || o != 0 {
		t.Errorf("bucket 100 netted to zero: %d %d %d", u, r, o)
	}
	if u, r, o := sum(base, 101, 101); u != 101 || r != 1 || o != 101 {
		t.Errorf("bucket 101: %d %d %d", u, r, o)
	}
}

// TestTenantRoundTrip: a state decoded from the store folds on exactly like
// the one kept in memory.
func TestTenantRoundTrip(t *testing.T) {
	g := newGenerator(7, true, "t")
	evs := g.history(700)
	r := rand.New(rand.NewPCG(7, 4))
	mem := newRefFold()
	s := newStore(t)
	loaded := mapCounters{}
	for i := 0; i < len(evs); {
		// The other side reloads its state from the store before every
		// batch of a few events, folds them and writes it back.
		tn, err := s.LoadTenant("t")
		if err != nil {
			t.Fatal(err)
		}
		d := NewDeltas()
		for n := 1 + r.IntN(8); n > 0 && i < len(evs); n, i = n-1, i+1 {
			mem.apply(&evs[i], uint64(i+1))
			Evolve(tn, &evs[i], Meta{Seq: uint64(i + 1), Decision: events.ClassOf(evs[i].Type) == events.ClassDecision}, d)
		}
		loaded.add(d)
		if err := s.Write(&Commit{Deltas: d, Tenants: []*Tenant{tn}, Applied: uint64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	checkTenant(t, s, mem.tenant("t"))
	for k, n := range mem.c {
		if loaded[k] != n {
			t.Fatalf("counter %+v: %d in memory, %d reloading", k, n, loaded[k])
		}
	}
	for k, n := range loaded {
		if mem.c[k] != n {
			t.Fatalf("counter %+v: %d reloading, %d in memory", k, n, mem.c[k])
		}
	}
}

// A store opened for reading only (MustExist) is never made where none is.
func TestOpenStoreMustExist(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "none")
	if _, err := OpenStore(dir, StoreOptions{MustExist: true}); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("open a missing store: %v, want os.ErrNotExist", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the directory was made: %v", err)
	}
}
