package replay

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/ledgerworks/ledger/api"
	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/ledger"
	"github.com/ledgerworks/ledger/projections"
)

// AtOptions say which point of the history to stand at.
type AtOptions struct {
	// Seq: stand right after stream sequence Seq was folded.
	Seq uint64
	// Time (when Seq is 0): stand right after the last message the stream
	// stored at or before Time.
	Time time.Time
	// Now is the clock the checks are evaluated at. Default: with Seq, the
	// stream timestamp of the last message folded (when the stream stood at
	// Seq); with Time, Time itself.
	Now time.Time
	// Checkpoint, when set, starts the fold from this checkpoint (its
	// applied sequence must not be past the point asked for).
	Checkpoint string
	// TempDir holds the temporary projection (default os.TempDir()).
	TempDir  string
	Store    projections.StoreOptions
	Progress *Progress
}

// Check is a call to evaluate as a check would have.
type Check struct {
	Dims    events.Dimensions `json:"dims,omitempty"`
	Groups  []string          `json:"groups,omitempty"`
	Request events.Amounts    `json:"request,omitempty"`
}

// CheckReply is what the ledger's check endpoint answers for a call on a
// tenant's state at now, in its wire form (api.CheckReply): the same steps as
// the service, in the same order. A project the tenant has no plan for is
// refused (unknown_project); otherwise the limits are evaluated with
// projections.Statuses (the call would take a concurrency permit, as a check
// assumes) and turned into a reply by ledger.CheckReplyOf, the service's own
// rule; a standing retry signal whose key the call's dimensions contain
// then refuses the call (retry_later).
func CheckReply(t *projections.Tenant, c projections.Counters, ch Check, now time.Time) api.CheckReply {
	if p := ch.Dims[events.DimProject]; p != "" && len(t.Plans) > 0 {
		_, known := t.Plans[p]
		_, all := t.Plans[""]
		if !known && !all {
			return api.CheckReply{Code: events.CodeNotFound, Reason: "unknown_project",
				Message: fmt.Sprintf("tenant %s has no project %q", t.Name, p), Limits: []api.LimitStatus{}}
		}
	}
	sts := projections.Statuses(t, c, projections.Call{Dims: ch.Dims, Groups: ch.Groups, Request: ch.Request, Permit: true}, now)
	reply := ledger.CheckReplyOf(sts, now)
	var until time.Time
	for _, r := range t.Retries {
		if !r.Signal.RetryUntil.After(now) || !r.Signal.RetryUntil.After(until) {
			continue
		}
		match := true
		for name, val := range r.Key {
			if ch.Dims[name] != val {
				match = false
				break
			}
		}
		if match {
			until = r.Signal.RetryUntil
		}
	}
	if !until.IsZero() {
		u := until.UTC()
		reply.Allowed, reply.Code, reply.Reason = false, events.CodeRetryLater, "retry_later"
		reply.Message = fmt.Sprintf("upstream asked to retry after %s (%s)", u.Format(time.RFC3339), ledger.Humanize(until.Sub(now)))
		reply.RetryAfter = int64((until.Sub(now) + time.Second - 1) / time.Second)
		reply.RetryUntil = &u
	}
	return reply
}

// Snapshot is one tenant's state at a point of the history.
type Snapshot struct {
	Seq     uint64    `json:"seq"`      // the projection's applied sequence
	SeqTime time.Time `json:"seq_time"` // stream timestamp of that message
	Now     time.Time `json:"now"`      // the clock the checks were evaluated at
	Tenant  string    `json:"tenant"`
	// Totals are the tenant's all-time totals at Seq.
	Totals map[events.Metric]int64 `json:"totals"`
	// Quotas are the IDs of the quotas in force at Seq.
	Quotas []string `json:"quotas"`
	// Open reservations and active workflows at Seq, by ID.
	Reservations []string  `json:"reservations"`
	Workflows    []string  `json:"workflows"`
	Checks       []AtCheck `json:"checks"`
}

// AtCheck is one check and what the ledger's check would have answered.
type AtCheck struct {
	Check
	Reply api.CheckReply `json:"reply"`
}

// At folds the stream up to a point (a sequence or a time) into a temporary
// projection and reports a tenant's usage and what each check would have
// answered there (CheckReply). The projection is the projector's own (Fold),
// so the answer is the one the live check gave when its projection stood
// there and its clock read Now.
func At(ctx context.Context, src Source, tenant string, checks []Check, o AtOptions) (*Snapshot, error) {
	if !events.ValidTenant(tenant) {
		return nil, fmt.Errorf("at: tenant %q", tenant)
	}
	if o.Seq == 0 && o.Time.IsZero() {
		return nil, errors.New("at: give a sequence or a time")
	}
	if o.Seq != 0 {
		last, err := src.Last(ctx)
		if err != nil {
			return nil, err
		}
		if last < o.Seq {
			return nil, fmt.Errorf("at: the stream ends at sequence %d, before %d", last, o.Seq)
		}
	}
	tmp, err := os.MkdirTemp(o.TempDir, "ledger-at-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "projection")
	if o.Checkpoint != "" {
		info, err := RestoreCheckpoint(o.Checkpoint, dir, o.Store)
		if err != nil {
			return nil, err
		}
		if o.Seq != 0 && info.Applied > o.Seq {
			return nil, fmt.Errorf("at: checkpoint %s is at sequence %d, past %d", o.Checkpoint, info.Applied, o.Seq)
		}
		if o.Seq == 0 && info.Applied > 0 { // the checkpoint's last message must be stored by o.Time
			var stored time.Time
			if _, err := src.Read(ctx, Range{From: info.Applied, To: info.Applied}, func(b []Message) error {
				stored = b[0].Time
				return ErrStop
			}); err != nil {
				return nil, err
			}
			if stored.After(o.Time) {
				return nil, fmt.Errorf("at: checkpoint %s is at sequence %d, stored %s, after %s", o.Checkpoint, info.Applied, stored.Format(time.RFC3339Nano), o.Time.Format(time.RFC3339Nano))
			}
		}
	}
	store, err := projections.OpenStore(dir, o.Store)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	p, err := projections.NewProjector(nil, store, projections.ProjectorOptions{})
	if err != nil {
		return nil, err
	}
	fo := FoldOptions{Through: o.Seq, Progress: o.Progress}
	if o.Seq == 0 {
		fo.Until = o.Time
	}
	fr, err := Fold(ctx, src, p, fo)
	if err != nil {
		return nil, err
	}
	snap := &Snapshot{Seq: p.Applied(), SeqTime: fr.LastTime, Tenant: tenant, Now: o.Now}
	if snap.SeqTime.IsZero() && snap.Seq > 0 { // nothing folded on top of a checkpoint
		if _, err := src.Read(ctx, Range{From: snap.Seq, To: snap.Seq}, func(b []Message) error {
			snap.SeqTime = b[0].Time
			return ErrStop
		}); err != nil {
			return nil, err
		}
	}
	if snap.Now.IsZero() {
		if o.Seq != 0 {
			snap.Now = snap.SeqTime
		} else {
			snap.Now = o.Time
		}
	}
	if snap.Totals, err = store.Totals(tenant); err != nil {
		return nil, err
	}
	err = p.View(tenant, func(t *projections.Tenant, c projections.Counters, _ uint64) error {
		snap.Quotas = append([]string{}, t.QuotaIDs()...)
		snap.Reservations = sortedKeys(t.Reservations)
		snap.Workflows = sortedKeys(t.Workflows)
		for _, ch := range checks {
			reply := CheckReply(t, c, ch, snap.Now)
			reply.AppliedSeq = snap.Seq
			snap.Checks = append(snap.Checks, AtCheck{Check: ch, Reply: reply})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return snap, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
