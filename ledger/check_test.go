package ledger_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ledgerworks/ledger/api"
	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/internal/ledgertest"
	"github.com/ledgerworks/ledger/ledger"
)

// TestConcurrentChecksAnswerTheirOwnCall: the service reuses a check's reply
// once it is sent, so many callers checking different accounts at once must
// each get the figures of their own account, also while the answers are
// denials (whose reply carries a message) and while some checks wait for
// the projection (after_seq, answered off the endpoint's goroutine). Run
// under -race, it also catches a reply reused before it was encoded.
func TestConcurrentChecksAnswerTheirOwnCall(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	l := ledgertest.StartLedger(t, ledger.Config{})
	c := newClient(t, ledgertest.Connect(t, l.ClientURL()))
	const tenant, users, max = "checks-acme", 11, 10
	day := events.Window{Kind: events.Calendar, Unit: events.UnitDay}
	if _, err := c.SetQuota(ctx, tenant, events.Quota{ID: "per-user", Split: []string{events.DimUser},
		Limits: []events.Limit{{Metric: events.MetricTokens, Max: max, Window: day}, {Metric: events.MetricRequests, Max: 1000, Window: day}}}); err != nil {
		t.Fatal(err)
	}
	// User i has used i tokens: user 10 is at the limit.
	user := func(i int) events.Dimensions { return events.Dimensions{events.DimUser: fmt.Sprintf("u%02d", i)} }
	var last uint64
	for i := 1; i < users; i++ {
		r, err := c.Consume(ctx, tenant, "", user(i), events.Amounts{Tokens: int64(i), Requests: 1})
		if err != nil {
			t.Fatal(err)
		}
		last = r.Seq
	}
	const callers, rounds = 8, 150
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for w := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range rounds {
				i := (w + k*callers) % users
				req := api.CheckRequest{Tenant: tenant, Dims: user(i), Request: events.Amounts{Tokens: 1}}
				if k%10 == 0 {
					req.AfterSeq = last
				}
				r, err := c.Check(ctx, req)
				if err != nil {
					errs <- err
					return
				}
				if err := ownAnswer(r, i, max); err != nil {
					errs <- fmt.Errorf("caller %d, check %d of user %d: %w", w, k, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// ownAnswer says whether r is the answer for user i, who has used i tokens
// and 1 request (none for user 0) and asks for one more token.
func ownAnswer(r *api.CheckReply, i int, max int64) error {
	if len(r.Limits) != 2 {
		return fmt.Errorf("%d limits, want 2", len(r.Limits))
	}
	tok, req := r.Limits[0], r.Limits[1]
	wantSplit := fmt.Sprintf("u%02d", i)
	requests := int64(min(i, 1))
	switch {
	case tok.Split != wantSplit || req.Split != wantSplit:
		return fmt.Errorf("splits %q and %q, want %q", tok.Split, req.Split, wantSplit)
	case tok.Metric != events.MetricTokens || tok.Used != int64(i) || tok.Requested != 1:
		return fmt.Errorf("tokens limit %+v, want %d used and 1 requested", tok, i)
	case req.Metric != events.MetricRequests || req.Used != requests:
		return fmt.Errorf("requests limit %+v, want %d used", req, requests)
	case r.Allowed != (int64(i)+1 <= max):
		return fmt.Errorf("allowed %v with %d of %d tokens used", r.Allowed, i, max)
	case !r.Allowed && (r.Code != events.CodeQuotaExceeded || r.Message == ""):
		return fmt.Errorf("denied with code %q and message %q", r.Code, r.Message)
	case r.Allowed && (r.Code != "" || r.Message != ""):
		return fmt.Errorf("allowed with code %q and message %q", r.Code, r.Message)
	}
	return nil
}
