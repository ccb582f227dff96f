package ledger

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/ledgerworks/ledger/api"
	"github.com/ledgerworks/ledger/dashboard"
	"github.com/ledgerworks/ledger/events"
)

// A denial appends nothing to the stream (only grants are decisions), so
// the dashboard's "last denials" come from memory: the service notes each
// one in a denialLog, bounded whatever the traffic, and a restart begins
// with none.
const (
	denialsPerTenant = 50  // the latest kept of each tenant, and of all together
	denialTenants    = 256 // tenants kept, the most recently denied
)

// denialLog keeps the latest denials: of each of the denialTenants tenants
// denied most recently (least recently denied forgotten first), and of all
// tenants together.
type denialLog struct {
	mu      sync.Mutex
	tenants map[string]*list.Element // of *tenantDenials
	lru     *list.List               // front: denied most recently
	all     denialRing
	changed chan struct{} // closed at the next denial once someone waits
	watched bool
}

type tenantDenials struct {
	name  string
	ring  denialRing
	total uint64
}

// denialRing holds the last denialsPerTenant denials.
type denialRing struct {
	buf  []dashboard.Denial
	next int
}

func (r *denialRing) add(d dashboard.Denial) {
	if len(r.buf) < denialsPerTenant {
		r.buf = append(r.buf, d)
		return
	}
	r.buf[r.next] = d
	r.next = (r.next + 1) % denialsPerTenant
}

// latest returns the denials, newest first.
func (r *denialRing) latest() []dashboard.Denial {
	out := make([]dashboard.Denial, 0, len(r.buf))
	for i := range r.buf {
		// next is the oldest once the ring is full, and 0 until then.
		out = append(out, r.buf[(r.next-1-i+2*len(r.buf))%len(r.buf)])
	}
	return out
}

func newDenialLog() *denialLog {
	return &denialLog{tenants: map[string]*list.Element{}, lru: list.New(), changed: make(chan struct{})}
}

func (l *denialLog) add(d dashboard.Denial) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.tenants[d.Tenant]
	if ok {
		l.lru.MoveToFront(e)
	} else {
		e = l.lru.PushFront(&tenantDenials{name: d.Tenant})
		l.tenants[d.Tenant] = e
		if l.lru.Len() > denialTenants {
			old := l.lru.Back()
			l.lru.Remove(old)
			delete(l.tenants, old.Value.(*tenantDenials).name)
		}
	}
	td := e.Value.(*tenantDenials)
	td.ring.add(d)
	td.total++
	l.all.add(d)
	if l.watched {
		close(l.changed)
		l.changed, l.watched = make(chan struct{}), false
	}
}

// Changed returns a channel closed at the next denial.
func (l *denialLog) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.watched = true
	return l.changed
}

// Tenant returns a tenant's latest denials, newest first, and how many it
// has had since the log began keeping it.
func (l *denialLog) Tenant(tenant string) ([]dashboard.Denial, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.tenants[tenant]
	if !ok {
		return []dashboard.Denial{}, 0
	}
	td := e.Value.(*tenantDenials)
	return td.ring.latest(), td.total
}

// All returns the latest denials of any tenant, newest first.
func (l *denialLog) All() []dashboard.Denial {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all.latest()
}

// noteDenials wraps endpoint op's handler so that every denial it answers
// (a refusing error, a check that says no, a batch operation refused) is
// noted in the service's denial log.
func (s *Service) noteDenials(op string, h func(context.Context, request) (any, error)) func(context.Context, request) (any, error) {
	return func(ctx context.Context, in request) (any, error) {
		reply, err := h(ctx, in)
		if r, ok := checkReplyIn(reply); ok {
			if err == nil && !r.Allowed {
				d := dashboard.Denial{Time: s.opts.Now().UTC(), Tenant: in.tenant, Op: op, Code: string(r.Code), Reason: r.Reason, Message: r.Message, RetryAfter: r.RetryAfter}
				for _, l := range r.Limits {
					if l.Exceeded && l.Enforcement == string(events.Hard) {
						d.Quota = l.Quota
						break
					}
				}
				s.denials.add(d)
			}
		} else if r, ok := reply.(api.BatchReply); ok {
			for _, res := range r.Results {
				if res.Error != nil {
					s.noteDenial("batch", in.tenant, res.Error)
				}
			}
		}
		if err != nil {
			s.noteDenial(op, in.tenant, err)
		}
		return reply, err
	}
}

// noteDenial notes err if it is a denial: a limit, a retry signal or an
// unknown project said no. Other errors (bad requests, conflicts, the
// ledger unavailable) are not the dashboard's denials.
func (s *Service) noteDenial(op, tenant string, err error) {
	var e *events.Error
	if !errors.As(err, &e) {
		return
	}
	reason, _ := e.Details["reason"].(string)
	switch e.Code {
	case events.CodeQuotaExceeded, events.CodeRetryLater, events.CodeWorkflowLimit, events.CodeStepLimit:
	case events.CodeNotFound:
		if reason != "unknown_project" {
			return
		}
	default:
		return
	}
	d := dashboard.Denial{Time: s.opts.Now().UTC(), Tenant: tenant, Op: op, Code: string(e.Code), Reason: reason, Message: e.Message, RetryAfter: e.RetryAfter}
	if q, ok := e.Details["quota"]; ok {
		d.Quota = fmt.Sprint(q)
	}
	s.denials.add(d)
}
