package ledger

import (
	"context"
	"fmt"
	"testing"

	"github.com/ledgerworks/ledger/api"
	"github.com/ledgerworks/ledger/dashboard"
	"github.com/ledgerworks/ledger/events"
)

// TestDashboardDenialLog: the latest denialsPerTenant of each tenant and of
// all, newest first; the least recently denied tenant forgotten past
// denialTenants; a waiter woken by the next denial.
func TestDashboardDenialLog(t *testing.T) {
	l := newDenialLog()
	changed := l.Changed()
	l.add(dashboard.Denial{Tenant: "acme", Message: "m0"})
	select {
	case <-changed:
	default:
		t.Fatal("Changed not closed by a denial")
	}
	for i := 1; i < denialsPerTenant+7; i++ {
		l.add(dashboard.Denial{Tenant: "acme", Message: fmt.Sprint("m", i)})
	}
	got, total := l.Tenant("acme")
	if len(got) != denialsPerTenant || total != denialsPerTenant+7 || got[0].Message != fmt.Sprint("m", denialsPerTenant+6) || got[len(got)-1].Message != "m7" {
		t.Fatalf("acme: %d kept (first %s, last %s), total %d", len(got), got[0].Message, got[len(got)-1].Message, total)
	}
	if got, total := l.Tenant("globex"); len(got) != 0 || total != 0 {
		t.Errorf("globex: %v %d", got, total)
	}
	for i := range denialTenants {
		l.add(dashboard.Denial{Tenant: fmt.Sprint("t", i), Message: "x"})
		if i == denialTenants/2 {
			l.add(dashboard.Denial{Tenant: "acme", Message: "again"}) // acme is recent again
		}
	}
	if got, _ := l.Tenant("acme"); len(got) == 0 || got[0].Message != "again" {
		t.Errorf("acme forgotten though denied recently: %v", got)
	}
	if got, total := l.Tenant("t0"); len(got) != 0 || total != 0 {
		t.Errorf("t0 kept past %d tenants: %d", denialTenants, total)
	}
	if all := l.All(); len(all) != denialsPerTenant || all[0].Tenant != fmt.Sprint("t", denialTenants-1) {
		t.Errorf("all: %d, newest of %s", len(all), all[0].Tenant)
	}
}

// TestDashboardDenialsNoted: which answers are denials (limits, retry
// signals, unknown projects; a check that says no; a batch's refused
// operations) and which are not (bad requests, conflicts, outages).
func TestDashboardDenialsNoted(t *testing.T) {
	s := &Service{opts: ServiceOptions{}.withDefaults(), denials: newDenialLog()}
	answer := func(reply any, err error) func(context.Context, request) (any, error) {
		return func(context.Context, request) (any, error) { return reply, err }
	}
	in := request{tenant: "acme"}
	for _, c := range []struct {
		op    string
		reply any
		err   error
		code  string // "" for no denial
	}{
		{"consume", nil, &events.Error{Code: events.CodeQuotaExceeded, Message: "full", Details: map[string]any{"quota": "daily", "reason": "exceeds_limit"}}, "quota_exceeded"},
		{"reserve", nil, events.ErrRetryLater, "retry_later"},
		{"workflow_begin", nil, events.ErrWorkflowLimit, "workflow_limit"},
		{"workflow_step", nil, events.ErrStepLimit, "step_limit"},
		{"limit_action", nil, &events.Error{Code: events.CodeNotFound, Details: map[string]any{"reason": "unknown_project"}}, "not_found"},
		{"quota_get", nil, &events.Error{Code: events.CodeNotFound}, ""},
		{"consume", nil, &events.Error{Code: events.CodeInvalidArgument}, ""},
		{"reserve", nil, &events.Error{Code: events.CodeUnavailable}, ""},
		{"check", nil, errWouldWait, ""},
		{"check", api.CheckReply{Allowed: true}, nil, ""},
		{"check", api.CheckReply{Code: events.CodeQuotaExceeded, Reason: "too_many_runs", Message: "no permit", Limits: []api.LimitStatus{
			{Quota: "soft", Exceeded: true, Enforcement: "soft"}, {Quota: "runs", Exceeded: true, Enforcement: "hard"}}}, nil, "quota_exceeded"},
		{"batch", api.BatchReply{Results: []api.BatchResult{{Error: &events.Error{Code: events.CodeConflict}}, {Error: &events.Error{Code: events.CodeQuotaExceeded}}}}, nil, "quota_exceeded"},
	} {
		_, before := s.denials.Tenant("acme")
		_, _ = s.noteDenials(c.op, answer(c.reply, c.err))(context.Background(), in)
		got, after := s.denials.Tenant("acme")
		switch {
		case c.code == "" && after != before:
			t.Errorf("%s %v %v: noted as a denial %+v", c.op, c.reply, c.err, got[0])
		case c.code != "" && (after != before+1 || got[0].Code != c.code || got[0].Op != c.op || got[0].Tenant != "acme"):
			t.Errorf("%s %v %v: noted %d, latest %+v; want one %s", c.op, c.reply, c.err, after-before, got, c.code)
		}
	}
	got, _ := s.denials.Tenant("acme")
	for _, d := range got {
		if d.Op == "check" && d.Quota != "runs" {
			t.Errorf("a check's denial names quota %q, want the hard one", d.Quota)
		}
		if d.Op == "consume" && d.Quota != "daily" {
			t.Errorf("consume's denial names quota %q", d.Quota)
		}
	}
}
