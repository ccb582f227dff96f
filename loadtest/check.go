package loadtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ledgerworks/ledger/api"
	"github.com/ledgerworks/ledger/events"
)

// Sequential figures take at most this many measured calls (and at most
// Duration).
const (
	seqWarmup = 500
	seqMax    = 20_000
)

// check: sequential p50 and p99 latency of a quota check and throughput with
// Concurrency callers, through the Go client, against a bare NATS
// request/reply echo responder on the same server (on the same kind of
// connection as the ledger's service: in-process when embedded).
func (e *env) check(ctx context.Context) error {
	pop, err := e.population(ctx, "main", e.cfg.Accounts, e.cfg.Tenants)
	if err != nil {
		return err
	}
	if err := e.ensureIngested(ctx, pop, min(e.cfg.Events, 50_000)); err != nil {
		return err
	}
	reqs := checkRequests(pop, 4096, 0)
	body, err := api.Encode(api.Msgpack, reqs[0])
	if err != nil {
		return err
	}
	stop, err := e.echoResponder()
	if err != nil {
		return err
	}
	defer stop()
	echoSubject := "benchecho." + e.prefix
	echo := func(int) error {
		_, err := e.nc.Request(echoSubject, body, 5*time.Second)
		return err
	}
	check := e.checkCalls(ctx, reqs)
	// The echo and the checks take turns (see interleaved), so that both
	// figures of a ratio are measured in the same seconds.
	lat, err := interleaved(ctx, seqWarmup, seqMax, e.cfg.Duration, echo, check)
	if err != nil {
		return fmt.Errorf("check or echo: %w", err)
	}
	baseSeq, seq := lat[0], lat[1]
	rates, err := concurrentRounds(ctx, e.cfg.Concurrency, 4, e.cfg.Duration, echo, check)
	if err != nil {
		return fmt.Errorf("check or echo: %w", err)
	}
	baseTput, tput := rates[0], rates[1]
	e.notef("check: %d sequential calls (echo %d) in alternating blocks of %d, %d concurrent callers on one connection in 4 alternating rounds", len(seq), len(baseSeq), interleaveBlock, e.cfg.Concurrency)
	e.report("check", "p50_us", seq.quantile(0.5), baseSeq.quantile(0.5), true)
	e.report("check", "p99_us", seq.quantile(0.99), baseSeq.quantile(0.99), true)
	e.report("check", "throughput_per_s", tput, baseTput, false)
	return nil
}

// checkCalls returns a call for sequential and concurrent: its i-th call
// sends the i-th of reqs (cycling) through the Go client.
func (e *env) checkCalls(ctx context.Context, reqs []api.CheckRequest) func(i int) error {
	return func(i int) error {
		_, err := e.cl.Check(ctx, reqs[i%len(reqs)])
		return err
	}
}

// checkRequests returns n checks of random accounts of pop, drawn from the
// random stream named by seed.
func checkRequests(pop *population, n int, seed uint64) []api.CheckRequest {
	r := rand.New(rand.NewPCG(3, 4+seed))
	out := make([]api.CheckRequest, n)
	for i := range out {
		tenant, user := pop.account(r.IntN(pop.accounts))
		out[i] = api.CheckRequest{
			Tenant:  tenant,
			Dims:    events.Dimensions{events.DimUser: user, events.DimModel: "gpt-4o"},
			Request: events.Amounts{Tokens: 500},
		}
	}
	return out
}

// echoResponder answers benchecho.<prefix> with the request's own body.
func (e *env) echoResponder() (stop func(), err error) {
	var nc *nats.Conn
	if srv := e.l.Server(); srv != nil {
		nc, err = nats.Connect(srv.ClientURL(), nats.InProcessServer(srv), nats.Name("ledger-bench-echo"))
	} else {
		nc, err = nats.Connect(e.cfg.NATSURL, nats.Name("ledger-bench-echo"))
	}
	if err != nil {
		return nil, err
	}
	sub, err := nc.Subscribe("benchecho."+e.prefix, func(m *nats.Msg) { m.Respond(m.Data) })
	if err != nil {
		nc.Close()
		return nil, err
	}
	if err := nc.Flush(); err != nil {
		nc.Close()
		return nil, err
	}
	// On a cluster the responder's interest reaches the other servers a
	// moment later: wait until the bench's own connection gets an answer.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := e.nc.Request("benchecho."+e.prefix, nil, time.Second)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			nc.Close()
			return nil, fmt.Errorf("echo responder unreachable: %w", err)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition with a deadline
	}
	return func() { sub.Unsubscribe(); nc.Close() }, nil
}

// ensureIngested makes sure pop has at least n events (setup, not measured).
func (e *env) ensureIngested(ctx context.Context, pop *population, n int) error {
	if pop.recorded >= n {
		return nil
	}
	_, err := e.ingestEvents(ctx, pop, n-pop.recorded, randomAccounts(pop.accounts))
	return err
}
