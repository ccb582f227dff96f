package ledger

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ledgerworks/ledger/api"
	"github.com/ledgerworks/ledger/auth"
	"github.com/ledgerworks/ledger/cluster"
	"github.com/ledgerworks/ledger/dashboard"
	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/projections"
)

// The ledger as the dashboard's Source (package dashboard): tenants and
// their views from the projection (the same Statuses a check answers
// with), denials from the service's in-memory log, partitions from every
// member's status answer, and changes from the projector's commits.

// Bounds of a view, so that a tenant with a million split values or open
// reservations costs the same as one with a hundred.
const (
	viewSplitsScanned    = 200 // split values looked at per quota
	viewSplitsShown      = 20  // the hottest of them shown
	summarySplitsScanned = 20  // per quota, for a tenant list row
	viewListMax          = 100 // reservations and workflows shown
	membersWait          = 200 * time.Millisecond
	partitionsMaxAge     = time.Second
)

// Dashboard returns the ledger's dashboard handler (once made, the same
// one): when the ledger has a credentials file (Config.AuthFile), only its
// admins and auditors sign in, with `ledger creds token`.
func (l *Ledger) Dashboard() http.Handler {
	l.dashOnce.Do(func() {
		opts := dashboard.Options{Logger: l.cfg.Logger}
		if l.auth != nil {
			opts.Users = l.currentUsers
		}
		l.dashSrc = &dashSource{l: l}
		l.dash = dashboard.New(l.dashSrc, opts)
	})
	return l.dash
}

// DashboardSource is the ledger as the dashboard's data (dashboard.Source).
func (l *Ledger) DashboardSource() dashboard.Source {
	l.Dashboard()
	return l.dashSrc
}

// dashboardHandler is what the HTTP listener serves at "/": Config.Dashboard
// when given, else the ledger's own.
func (l *Ledger) dashboardHandler() http.Handler {
	if l.cfg.Dashboard != nil {
		return l.cfg.Dashboard
	}
	return l.Dashboard()
}

// currentUsers are the credentials file's users as the ledger last read it.
func (l *Ledger) currentUsers() []auth.User {
	l.authMu.Lock()
	defer l.authMu.Unlock()
	return slices.Clone(l.auth.users)
}

type dashSource struct {
	l *Ledger

	changedMu sync.Mutex
	changed   chan struct{} // nil: nobody waits

	partsMu sync.Mutex
	partsAt time.Time
	parts   dashboard.PartitionsView
}

func (s *dashSource) now() time.Time { return s.l.service.opts.Now() }

// Changed is closed at the projector's next commit or the next denial. One
// goroutine at most waits for them, and only while somebody has asked
// since the last change: an idle dashboard costs nothing.
func (s *dashSource) Changed() <-chan struct{} {
	s.changedMu.Lock()
	defer s.changedMu.Unlock()
	if s.changed == nil {
		s.changed = make(chan struct{})
		// Taken now: a change from here on closes them.
		folded, denied := s.l.projector.Advanced(), s.l.service.denials.Changed()
		go func() {
			select {
			case <-folded:
			case <-denied:
			case <-s.l.done:
			}
			s.changedMu.Lock()
			close(s.changed)
			s.changed = nil
			s.changedMu.Unlock()
		}()
	}
	return s.changed
}

func (s *dashSource) Tenants(_ context.Context, q dashboard.TenantQuery) (dashboard.TenantList, error) {
	names, more, err := s.l.projector.Tenants(q.Prefix, q.After, q.Limit)
	if err != nil {
		return dashboard.TenantList{}, err
	}
	list := dashboard.TenantList{Tenants: make([]dashboard.TenantSummary, 0, len(names)), More: more, Denials: s.l.service.denials.All()}
	for _, name := range names {
		v, sampled, err := s.view(name, summarySplitsScanned, 1, 0)
		if err != nil {
			return dashboard.TenantList{}, err
		}
		sum := dashboard.TenantSummary{Name: name, Partition: v.Partition, Quotas: len(v.Quotas), Reservations: v.ReservationsTotal,
			Workflows: v.WorkflowsTotal, Retries: len(v.Retries), Denials: v.DenialsTotal, Sampled: sampled}
		if len(v.Denials) > 0 {
			sum.LastDenial = &v.Denials[0].Time
		}
		for _, q := range v.Quotas {
			for _, sp := range q.Splits {
				for _, ls := range sp.Limits {
					if ls.Warning {
						sum.Warnings++
					}
					if ls.Exceeded {
						sum.Exceeded++
					}
					if ls.PercentUsed > sum.PeakPercent || sum.PeakLimit == "" {
						sum.PeakPercent = ls.PercentUsed
						sum.PeakLimit = q.ID + " " + string(ls.Metric)
						if sp.Split != "" {
							sum.PeakLimit += ", " + splitText(q.Split, sp.Split)
						}
					}
				}
			}
		}
		list.Tenants = append(list.Tenants, sum)
	}
	return list, nil
}

func (s *dashSource) Tenant(_ context.Context, tenant string) (dashboard.TenantView, error) {
	if !events.ValidTenant(tenant) {
		return dashboard.TenantView{}, fmt.Errorf("%w: %q cannot be a tenant", dashboard.ErrInvalid, tenant)
	}
	v, _, err := s.view(tenant, viewSplitsScanned, viewSplitsShown, viewListMax)
	return v, err
}

// view makes a tenant's view: for each quota the limits of at most shown
// splits, the hottest of the first scanned; at most list reservations and
// workflows. sampled says whether a quota had more splits than scanned.
func (s *dashSource) view(tenant string, scanned, shown, list int) (dashboard.TenantView, bool, error) {
	p := s.l.projector
	now := s.now()
	v := dashboard.TenantView{Tenant: tenant, Partition: events.Partition(tenant), Time: now.UTC()}
	names, _, err := p.Tenants(tenant, "", 1)
	if err != nil {
		return v, false, err
	}
	v.Known = len(names) == 1 && names[0] == tenant
	// Which splits each quota has: a scan of the store, made before the
	// projector's read lock is taken so that folding never waits for it.
	epochs := map[string]uint32{}
	if err := p.View(tenant, func(t *projections.Tenant, _ projections.Counters, _ uint64) error {
		for _, id := range t.QuotaIDs() {
			epochs[id] = t.QuotaEpoch(id)
		}
		return nil
	}); err != nil {
		return v, false, err
	}
	splits := map[string][]string{}
	more := map[string]bool{}
	sampled := false
	for id, e := range epochs {
		if splits[id], more[id], err = p.Splits(tenant, id, e, scanned); err != nil {
			return v, false, err
		}
		sampled = sampled || more[id]
	}
	err = p.View(tenant, func(t *projections.Tenant, c projections.Counters, applied uint64) error {
		v.AppliedSeq = applied
		for _, id := range t.QuotaIDs() {
			qs := t.Quotas[id]
			q := &qs.Quota
			qv := dashboard.QuotaView{ID: id, Scope: q.Scope, Split: q.Split, Enforcement: string(events.Hard), WarnPercent: q.WarnPercent,
				MaxSteps: q.MaxSteps, Since: qs.Since.UTC(), SplitsSeen: len(splits[id]), SplitsMore: more[id]}
			if q.IsSoft() {
				qv.Enforcement = string(events.Soft)
			}
			if qv.WarnPercent == 0 {
				qv.WarnPercent = 80
			}
			ids := splits[id]
			if len(ids) == 0 {
				ids = []string{""} // no usage yet: the limits, at zero
			}
			for _, sp := range ids {
				sts := projections.QuotaStatuses(t, c, id, sp, now)
				sv := dashboard.SplitView{Split: sp, Limits: make([]api.LimitStatus, len(sts))}
				for i := range sts {
					sv.Limits[i] = LimitStatusOf(&sts[i], now)
				}
				qv.Splits = append(qv.Splits, sv)
			}
			slices.SortStableFunc(qv.Splits, func(a, b dashboard.SplitView) int { return cmp.Compare(peak(b), peak(a)) })
			if len(qv.Splits) > shown {
				qv.Splits = qv.Splits[:shown]
			}
			v.Quotas = append(v.Quotas, qv)
		}
		v.ReservationsTotal = len(t.Reservations)
		v.Reservations = make([]dashboard.ReservationView, 0, min(len(t.Reservations), list))
		if list > 0 {
			for _, r := range t.Reservations {
				v.Reservations = append(v.Reservations, dashboard.ReservationView{ID: r.ID, Time: r.Time.UTC(), ExpiresAt: r.ExpiresAt.UTC(), Dims: r.Dims, Estimate: r.Estimate})
			}
		}
		v.WorkflowsTotal = len(t.Workflows)
		v.Workflows = make([]api.ActiveWorkflow, 0, min(len(t.Workflows), list))
		if list > 0 {
			for _, w := range t.Workflows {
				v.Workflows = append(v.Workflows, api.ActiveWorkflow{Workflow: w.ID, Begun: w.Begun.UTC(), Steps: w.Steps, Dims: w.Dims})
			}
		}
		v.Retries = []dashboard.RetryView{}
		for _, r := range t.Retries {
			if r.Signal.RetryUntil.After(now) {
				v.Retries = append(v.Retries, dashboard.RetryView{Key: r.Key, RetryUntil: r.Signal.RetryUntil.UTC(), RetryDelay: r.Signal.RetryDelay, QuotaID: r.Signal.QuotaID, Metric: r.Signal.QuotaMetric})
			}
		}
		return nil
	})
	if err != nil {
		return v, false, err
	}
	if v.Quotas == nil {
		v.Quotas = []dashboard.QuotaView{}
	}
	// Sorted and cut outside the lock: a tenant may hold many.
	slices.SortFunc(v.Reservations, func(a, b dashboard.ReservationView) int {
		return cmp.Or(a.ExpiresAt.Compare(b.ExpiresAt), cmp.Compare(a.ID, b.ID))
	})
	v.Reservations = v.Reservations[:min(len(v.Reservations), list)]
	slices.SortFunc(v.Workflows, func(a, b api.ActiveWorkflow) int {
		return cmp.Or(a.Begun.Compare(b.Begun), cmp.Compare(a.Workflow, b.Workflow))
	})
	v.Workflows = v.Workflows[:min(len(v.Workflows), list)]
	slices.SortFunc(v.Retries, func(a, b dashboard.RetryView) int { return b.RetryUntil.Compare(a.RetryUntil) })
	v.Denials, v.DenialsTotal = s.l.service.denials.Tenant(tenant)
	return v, sampled, nil
}

// peak is the highest percent used of a split's limits.
func peak(sv dashboard.SplitView) float64 {
	m := 0.0
	for _, l := range sv.Limits {
		m = max(m, l.PercentUsed)
	}
	return m
}

// splitText names a split value by its dimensions: "user=ana".
func splitText(dims []string, split string) string {
	if len(dims) == 1 {
		return dims[0] + "=" + split
	}
	return split
}

// Partitions gathers every member's status (cached for a second: members
// are asked over NATS, and answers are awaited for membersWait) and the
// stream's last sequence of each partition.
func (s *dashSource) Partitions(ctx context.Context) (dashboard.PartitionsView, error) {
	s.partsMu.Lock()
	defer s.partsMu.Unlock()
	if time.Since(s.partsAt) < partitionsMaxAge {
		return s.parts, nil
	}
	members, err := cluster.Members(ctx, s.l.nc, membersWait)
	if err != nil {
		return dashboard.PartitionsView{}, err
	}
	pv := dashboard.PartitionsView{Member: s.l.cfg.Member, Members: members, Time: s.now().UTC()}
	if pv.Member == "" {
		pv.Member = DefaultMemberName(s.l.cfg.DataDir) // what Start named it
	}
	if pv.Members == nil {
		pv.Members = []api.MemberStatus{}
	}
	for _, n := range s.l.service.Requests() {
		pv.Requests += int64(n)
	}
	byPart := map[int]*dashboard.PartitionView{}
	standbyApplied := map[int]uint64{}
	for _, m := range members {
		pv.StreamSeq = max(pv.StreamSeq, m.StreamSeq)
		for _, ps := range m.Partitions {
			p := byPart[ps.Partition]
			if p == nil {
				p = &dashboard.PartitionView{Partition: ps.Partition}
				byPart[ps.Partition] = p
			}
			switch ps.State {
			case "owner":
				p.Owner, p.Epoch, p.AppliedSeq = m.Member, ps.Epoch, m.AppliedSeq
			case "standby":
				p.Standby = append(p.Standby, m.Member)
				standbyApplied[ps.Partition] = max(standbyApplied[ps.Partition], m.AppliedSeq)
			default:
				p.Followers = append(p.Followers, m.Member)
			}
		}
	}
	get := apiPrefixOf(jetstream.JetStreamOptions{}) + "DIRECT.GET." + s.l.stream.CachedInfo().Config.Name
	for part := range events.Partitions {
		p := byPart[part]
		if p == nil {
			continue // nobody folds it: not this cluster's, or every member is away
		}
		if p.Owner == "" {
			p.AppliedSeq = standbyApplied[part]
		}
		if p.LastSeq, err = LastSeqOf(ctx, s.l.stream, []string{events.PartitionFilter(part)}); err != nil {
			return dashboard.PartitionsView{}, err
		}
		if p.LastSeq > p.AppliedSeq {
			// The stream counts what is left: lag.go's direct get.
			if p.Lag, _, err = pendingAfter(ctx, s.l.nc, get, events.PartitionFilter(part), p.AppliedSeq); err != nil {
				return dashboard.PartitionsView{}, err
			}
		}
		pv.Partitions = append(pv.Partitions, *p)
	}
	if pv.Partitions == nil {
		pv.Partitions = []dashboard.PartitionView{}
	}
	s.parts, s.partsAt = pv, time.Now()
	return pv, nil
}
