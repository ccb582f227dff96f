package loadtest

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/ledgerworks/ledger/events"
)

// A population is a set of accounts with a quota in force: account i is user
// "u<i/T>" of tenant i%T, and every tenant has the quota "bench", split per
// user, with a daily token limit and a one-minute sliding request limit (both
// high enough never to deny), so every usage event updates two windowed
// counters of its account and four all-time totals of its tenant.
type population struct {
	name     string
	tenants  []string
	accounts int
	recorded int // usage events ingested so far (each has requests=1)
	next     int // next event number, for unique IDs
}

// benchQuota is the quota every bench tenant has.
func benchQuota() events.Quota {
	return events.Quota{
		ID:    "bench",
		Split: []string{events.DimUser},
		Limits: []events.Limit{
			{Metric: events.MetricTokens, Max: 1 << 40, Window: events.Window{Kind: events.Calendar, Unit: events.UnitDay, TZ: "UTC"}},
			{Metric: events.MetricRequests, Max: 1 << 40, Window: events.Window{Kind: events.Sliding, Seconds: 60}},
		},
	}
}

// population returns the named population, setting its quotas up (through
// the service, concurrently) the first time.
func (e *env) population(ctx context.Context, name string, accounts, tenants int) (*population, error) {
	if p, ok := e.pops[name]; ok {
		return p, nil
	}
	tenants = min(tenants, accounts)
	p := &population{name: name, accounts: accounts}
	for i := range tenants {
		p.tenants = append(p.tenants, e.prefix+name+strconv.Itoa(i))
	}
	if err := e.setQuotas(ctx, p.tenants, benchQuota()); err != nil {
		return nil, err
	}
	e.pops[name] = p
	return p, nil
}

func (e *env) setQuotas(ctx context.Context, tenants []string, q events.Quota) error {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	work := make(chan string)
	errs := make(chan error, 64)
	var wg sync.WaitGroup
	for range min(64, len(tenants)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range work {
				if _, err := e.cl.SetQuota(ctx, t, q); err != nil {
					errs <- fmt.Errorf("set quota of %s: %w", t, err)
					return
				}
			}
		}()
	}
	var err error
send:
	for _, t := range tenants {
		select {
		case work <- t:
		case err = <-errs:
			break send
		}
	}
	close(work)
	wg.Wait()
	close(errs)
	if err == nil {
		err = <-errs
	}
	return err
}

// account returns the tenant and user of account i.
func (p *population) account(i int) (tenant, user string) {
	t := len(p.tenants)
	return p.tenants[i%t], "u" + strconv.Itoa(i/t)
}

// event returns the usage event number n of account a.
func (p *population) event(n, a int, now time.Time) events.Event {
	tenant, user := p.account(a)
	return events.Event{
		ID: p.name + "-" + strconv.FormatInt(int64(n), 36), Type: events.TypeUsageRecorded,
		Tenant: tenant, Time: now,
		Dims: events.Dimensions{events.DimUser: user, events.DimModel: "gpt-4o"},
		Payload: &events.UsageRecorded{Amounts: events.Amounts{
			InputTokens: 100 + int64(n%400), OutputTokens: 50 + int64(n%100), Requests: 1,
		}},
	}
}
