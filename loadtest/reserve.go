package loadtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/ledgerworks/ledger/client"
	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/projections"
)

// Reserve scenario amounts: every reservation holds reserveEstimate tokens
// and is reconciled with one request and no tokens, so the hot account's
// token limit bounds the holds open at once.
const reserveEstimate = 100

// reserve: reserve+reconcile pairs per second with Concurrency callers over
// ReserveAccounts accounts, against raw JetStream async publish of one
// message per decision; p99 latency of a reserve under that load against
// p99 of a raw sync publish with as many concurrent publishers; and pairs
// per second over one hot account whose limit admits only half the callers'
// holds at once, against raw sync publish one at a time. The hot account's
// decisions are then read back from the stream to prove that its holds never
// passed the limit.
func (e *env) reserve(ctx context.Context) error {
	pop, err := e.population(ctx, "rsv", e.cfg.ReserveAccounts, e.cfg.Tenants)
	if err != nil {
		return err
	}
	hotMax := int64(max(e.cfg.Concurrency/2, 1)) * reserveEstimate
	hot := &population{name: "hot", accounts: 1, tenants: []string{e.prefix + "hot"}}
	hq := benchQuota()
	hq.Limits[0].Max = hotMax
	if err := e.setQuotas(ctx, hot.tenants, hq); err != nil {
		return err
	}
	sample := events.New(client.NewID(), pop.tenants[0], time.Now(), events.Dimensions{events.DimUser: "u0", events.DimModel: "gpt-4o"},
		&events.ReservationCreated{Reservation: client.NewID(), Estimate: events.Amounts{Tokens: reserveEstimate}, ExpiresAt: time.Now().Add(time.Minute)})
	payload, err := sample.MarshalMsgpack()
	if err != nil {
		return err
	}

	// Baselines: async, sync one at a time, sync with Concurrency publishers.
	raw, async, err := e.rawPublish(ctx, "decisions", 10_000_000, e.cfg.Duration, payload)
	if err != nil {
		return err
	}
	syncSeq, err := e.rawSyncPublish(ctx, raw, payload, 1, e.cfg.Duration/2)
	if err != nil {
		return err
	}
	syncConc, err := e.rawSyncPublish(ctx, raw, payload, e.cfg.Concurrency, e.cfg.Duration/2)
	if err != nil {
		return err
	}
	e.notef("reserve baselines: raw async publish %.0f msgs/s; raw sync publish one at a time %.0f msgs/s (p99 %.0f µs), with %d publishers %.0f msgs/s (p99 %.0f µs)",
		async.rate(), syncSeq.rate.rate(), syncSeq.lat.quantile(0.99), e.cfg.Concurrency, syncConc.rate.rate(), syncConc.lat.quantile(0.99))
	ceiling, err := e.echoPairs(ctx, payload, e.cfg.Duration/2)
	if err != nil {
		return err
	}
	e.notef("reserve ceiling: two bare echo round trips per pair (no ledger at all), %d callers: %.0f pairs/s, %.2f× raw async publish, %.2f× raw sync one at a time",
		e.cfg.Concurrency, ceiling, ceiling/async.rate(), ceiling/syncSeq.rate.rate())

	spread, err := e.reservePairs(ctx, pop, e.cfg.Duration)
	if err != nil {
		return err
	}
	hotRun, err := e.reservePairs(ctx, hot, e.cfg.Duration)
	if err != nil {
		return err
	}
	if err := e.verifyNoOvercommit(ctx, hot.tenants[0], hotMax); err != nil {
		return err
	}
	var open, stateBytes int
	e.projector().View(hot.tenants[0], func(t *projections.Tenant, _ projections.Counters, _ uint64) error {
		open = len(t.Reservations)
		b, err := msgpack.Marshal(t)
		stateBytes = len(b)
		return err
	})
	e.notef("reserve: the hot tenant's state (%d bytes, %d open reservations; settled ones are kept apart) is re-encoded at every commit that touches the tenant and cloned for every group of decisions",
		stateBytes, open)
	e.notef("reserve: %d accounts: %d pairs, %d denied, reserve p50 %.0f µs; hot account: %d pairs, %d denied (limit admits %d holds), reserve p50 %.0f µs; no over-commit",
		pop.accounts, spread.pairs, spread.denied, spread.lat.quantile(0.5), hotRun.pairs, hotRun.denied, hotMax/reserveEstimate, hotRun.lat.quantile(0.5))
	e.notef("reserve: pairs_per_s is %.2f× raw sync publish one at a time (target 3×); hot_pairs_per_s is %.2f× (target 1×)",
		spread.rate()/syncSeq.rate.rate(), hotRun.rate()/syncSeq.rate.rate())
	e.report("reserve", "pairs_per_s", spread.rate(), async.rate(), false)
	e.report("reserve", "p99_us", spread.lat.quantile(0.99), syncConc.lat.quantile(0.99), true)
	e.report("reserve", "hot_pairs_per_s", hotRun.rate(), syncSeq.rate.rate(), false)
	return nil
}

type pairsResult struct {
	pairs, denied int64
	elapsed       time.Duration
	lat           latencies // of the reserves
}

func (r pairsResult) rate() float64 { return float64(r.pairs) / r.elapsed.Seconds() }

// reservePairs runs Concurrency callers that reserve and reconcile on random
// accounts of pop for d.
func (e *env) reservePairs(ctx context.Context, pop *population, d time.Duration) (pairsResult, error) {
	var res pairsResult
	var mu sync.Mutex
	var pairs, denied atomic.Int64
	var stop atomic.Bool
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for w := range e.cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pick := randomAccounts(pop.accounts)
			var lat latencies
			defer func() { mu.Lock(); res.lat = append(res.lat, lat...); mu.Unlock() }()
			for k := 0; !stop.Load(); k++ {
				tenant, user := pop.account(pick(k*e.cfg.Concurrency + w))
				dims := events.Dimensions{events.DimUser: user, events.DimModel: "gpt-4o"}
				t := time.Now()
				r, err := e.cl.Reserve(ctx, tenant, dims, events.Amounts{Tokens: reserveEstimate}, client.ReserveOptions{})
				lat = append(lat, time.Since(t))
				if errors.Is(err, events.ErrQuotaExceeded) {
					denied.Add(1)
					continue
				}
				if err == nil {
					_, err = r.Reconcile(ctx, events.Amounts{Requests: 1})
				}
				if err != nil {
					once.Do(func() { firstErr = err })
					stop.Store(true)
					return
				}
				pairs.Add(1)
			}
		}()
	}
	t := time.NewTimer(d)
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	stop.Store(true)
	wg.Wait()
	res.elapsed = time.Since(start)
	res.pairs, res.denied = pairs.Load(), denied.Load()
	if firstErr != nil {
		return res, fmt.Errorf("reserve/reconcile: %w", firstErr)
	}
	return res, nil
}

// echoPairs is the request/reply ceiling of a reserve and reconcile pair:
// Concurrency callers each making two round trips to a bare echo responder
// with a body of the reserve's size, for d; it returns pairs per second.
func (e *env) echoPairs(ctx context.Context, body []byte, d time.Duration) (float64, error) {
	stop, err := e.echoResponder()
	if err != nil {
		return 0, err
	}
	defer stop()
	subject := "benchecho." + e.prefix
	perSecond, err := concurrent(ctx, e.cfg.Concurrency, d, func(int) error {
		for range 2 {
			if _, err := e.nc.Request(subject, body, 5*time.Second); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("echo pairs: %w", err)
	}
	return perSecond, nil
}

type syncResult struct {
	rate rate
	lat  latencies
}

// rawSyncPublish publishes payload with n concurrent publishers, each
// waiting for its acknowledgement before the next, for d.
func (e *env) rawSyncPublish(ctx context.Context, raw *rawStream, payload []byte, n int, d time.Duration) (syncResult, error) {
	var mu sync.Mutex
	var out syncResult
	var stop atomic.Bool
	var count atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	subject := raw.subject + ".sync"
	start := time.Now()
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat latencies
			defer func() { mu.Lock(); out.lat = append(out.lat, lat...); mu.Unlock() }()
			for !stop.Load() {
				t := time.Now()
				pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := e.js.Publish(pctx, subject, payload)
				cancel()
				if err != nil {
					once.Do(func() { firstErr = err })
					stop.Store(true)
					return
				}
				lat = append(lat, time.Since(t))
				count.Add(1)
			}
		}()
	}
	t := time.NewTimer(d)
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	stop.Store(true)
	wg.Wait()
	out.rate = rate{n: int(count.Load()), elapsed: time.Since(start)}
	slices.Sort(out.lat)
	return out, firstErr
}

// verifyNoOvercommit reads a tenant's decisions back from the stream and
// checks that the tokens held by open reservations never passed max.
func (e *env) verifyNoOvercommit(ctx context.Context, tenant string, limit int64) error {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	s, err := e.js.Stream(ctx, events.StreamName)
	if err != nil {
		return err
	}
	subject := events.Subject(tenant, events.ClassDecision)
	last, err := s.GetLastMsgForSubject(ctx, subject)
	if err != nil {
		return fmt.Errorf("last decision of %s: %w", tenant, err)
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		return err
	}
	open := map[string]int64{}
	var held, peak int64
	created := 0
	for {
		m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if errors.Is(err, nats.ErrNoResponders) && ctx.Err() == nil {
			// On a cluster, the ordered consumer's first pulls can come
			// before its replica is placed.
			continue
		}
		if err != nil {
			return fmt.Errorf("read decisions of %s: %w", tenant, err)
		}
		evs, err := events.DecodeBatch(m.Data())
		if err != nil {
			return err
		}
		for _, ev := range evs {
			switch p := ev.Payload.(type) {
			case *events.ReservationCreated:
				open[p.Reservation] = p.Estimate.Tokens
				held += p.Estimate.Tokens
				created++
			case *events.ReservationReconciled:
				held -= open[p.Reservation]
				held += p.Actual.Tokens // counted in today's window
				delete(open, p.Reservation)
			case *events.ReservationReleased:
				held -= open[p.Reservation]
				delete(open, p.Reservation)
			case *events.ReservationExpired:
				held -= open[p.Reservation]
				delete(open, p.Reservation)
			}
			peak = max(peak, held)
			if held > limit {
				return fmt.Errorf("over-commit: tenant %s holds %d tokens against a limit of %d after event %s", tenant, held, limit, ev.ID)
			}
		}
		md, err := m.Metadata()
		if err != nil {
			return err
		}
		if md.Sequence.Stream >= last.Sequence {
			break
		}
	}
	e.notef("reserve: read back %d reservations of the hot account: at most %d of %d tokens held at once", created, peak, limit)
	return nil
}
