package replay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/projections"
)

// Difference is one way a live projection differs from the stream.
type Difference struct {
	// Tenant is the account the entry belongs to ("" for store-wide
	// entries such as the applied sequence).
	Tenant string `json:"tenant"`
	// Kind is the entry kind: counter, total, tenant (state), seen,
	// applied or unknown.
	Kind string `json:"kind"`
	// Key names the entry: for a counter its quota, epoch, split, limit,
	// bucket and usage or reservation side.
	Key string `json:"key"`
	// Recomputed is the value folded from the stream, Live the value found
	// ("absent" when there is none).
	Recomputed string `json:"recomputed"`
	Live       string `json:"live"`
	// Check is how the difference was found: "state" (the projection
	// folded again from the stream, entry by entry) or "totals" (the
	// all-time totals summed independently of the projector's fold).
	Check string `json:"check"`
}

func (d Difference) String() string {
	t := d.Tenant
	if t == "" {
		t = "-"
	}
	return fmt.Sprintf("tenant=%s %s %s: recomputed %s, live %s (%s check)", t, d.Kind, d.Key, d.Recomputed, d.Live, d.Check)
}

// AuditResult is the outcome of an audit.
type AuditResult struct {
	Stream StreamRead `json:"stream"`
	// LiveApplied is the sequence the live projection had folded through.
	LiveApplied uint64 `json:"live_applied_seq"`
	// Live and Recomputed are the digests of both projections (state
	// audits only).
	Live        *Digest      `json:"live_digest,omitempty"`
	Recomputed  *Digest      `json:"recomputed_digest,omitempty"`
	Tenants     int          `json:"tenants"` // accounts compared
	Differences []Difference `json:"differences"`
}

// OK reports whether the live projection matched the stream.
func (r *AuditResult) OK() bool { return len(r.Differences) == 0 }

// Accounts returns the tenants with at least one difference, sorted.
func (r *AuditResult) Accounts() []string {
	var out []string
	seen := map[string]bool{}
	for _, d := range r.Differences {
		if !seen[d.Tenant] {
			seen[d.Tenant] = true
			out = append(out, d.Tenant)
		}
	}
	sort.Strings(out)
	return out
}

// AuditOptions configure an audit of a projection directory.
type AuditOptions struct {
	// TempDir is where the stream is folded again (default os.TempDir()).
	// The folded copy is deleted afterwards unless Keep is set.
	TempDir string
	// Keep, when set, is the directory the recomputed projection is folded
	// into and left in (it must not exist).
	Keep     string
	Store    projections.StoreOptions
	Progress *Progress
}

// Audit folds the stream again, through the live projection's applied
// sequence, into a fresh projection with the projector's own code, and
// compares the two entry by entry: every counter, total, tenant state, seen
// event ID and the applied sequence. Independently of the projector's fold,
// it also sums every tenant's all-time totals from the raw events and
// compares them with the live totals. It chains the content hash of the
// events read.
//
// The live store must not be written to meanwhile (stop its projector, or
// audit a checkpoint of it: Pebble lets one process open a directory).
func Audit(ctx context.Context, src Source, live *projections.Store, o AuditOptions) (*AuditResult, error) {
	applied, err := live.Applied()
	if err != nil {
		return nil, err
	}
	res := &AuditResult{LiveApplied: applied, Differences: []Difference{}}
	dir := o.Keep
	if dir == "" {
		tmp, err := os.MkdirTemp(o.TempDir, "ledger-audit-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		dir = filepath.Join(tmp, "projection")
	} else if _, err := os.Stat(dir); err == nil {
		return nil, fmt.Errorf("audit: %s already exists", dir)
	}
	re, err := projections.OpenStore(dir, o.Store)
	if err != nil {
		return nil, err
	}
	defer re.Close()
	p, err := projections.NewProjector(nil, re, projections.ProjectorOptions{})
	if err != nil {
		return nil, err
	}
	sc := NewScanner()
	tf := newTotalsFold()
	if applied > 0 {
		_, err = Fold(ctx, src, p, FoldOptions{Through: applied, Progress: o.Progress, OnMessages: func(batch []Message) {
			for i := range batch {
				sc.Scan(&batch[i], tf.add)
			}
		}})
		if err != nil {
			return nil, err
		}
	}
	res.Stream = streamRead(sc, 1, applied)
	if res.Live, err = DigestStore(live); err != nil {
		return nil, err
	}
	if res.Recomputed, err = DigestStore(re); err != nil {
		return nil, err
	}
	tenants := map[string]bool{}
	if err := compareStores(re, live, tenants, &res.Differences); err != nil {
		return nil, err
	}
	liveTotals, err := storeTotals(live)
	if err != nil {
		return nil, err
	}
	for t := range tf.totals {
		tenants[t] = true
	}
	res.Differences = append(res.Differences, compareTotals(tf.totals, liveTotals)...)
	delete(tenants, "")
	res.Tenants = len(tenants)
	sortDifferences(res.Differences)
	return res, nil
}

// UsageReader reads a live service's all-time totals of a tenant, as
// usage.get answers them: at least through afterSeq, and the sequence the
// answer stands at.
type UsageReader interface {
	Usage(ctx context.Context, tenant string, afterSeq uint64) (totals map[events.Metric]int64, applied uint64, err error)
}

// AuditService sums every tenant's all-time totals from the raw events and
// compares them with what a live service answers (usage.get), each tenant at
// the exact sequence its answer stands at. It audits the tenants that appear
// in the stream through its last sequence at the start; it needs no access
// to the service's Pebble directory, only to the stream and the service.
func AuditService(ctx context.Context, src Source, svc UsageReader, progress *Progress) (*AuditResult, error) {
	res := &AuditResult{Differences: []Difference{}}
	sc := NewScanner()
	tf := newTotalsFold()
	scanned, err := readShowing(ctx, src, Range{From: 1}, progress, func(batch []Message) error {
		for i := range batch {
			sc.Scan(&batch[i], tf.add)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	tenants := make([]string, 0, len(tf.seenTenants))
	for t := range tf.seenTenants {
		tenants = append(tenants, t)
	}
	sort.Strings(tenants)
	for _, t := range tenants {
		got, at, err := svc.Usage(ctx, t, scanned)
		if err != nil {
			return nil, fmt.Errorf("usage of %s: %w", t, err)
		}
		if at > scanned { // the service has moved on: catch up to where it stands
			_, err := src.Read(ctx, Range{From: scanned + 1, To: at}, func(batch []Message) error {
				for i := range batch {
					sc.Scan(&batch[i], tf.add)
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
			scanned = at
		}
		// at < scanned is an answer too: the service waits until it has
		// folded every event of t up to scanned, not every message of the
		// stream, so t has nothing between at and scanned and its totals
		// compare with the scan's.
		res.Differences = append(res.Differences, compareTotals(
			map[string]map[events.Metric]int64{t: tf.totals[t]},
			map[string]map[events.Metric]int64{t: got})...)
		res.LiveApplied = max(res.LiveApplied, at)
	}
	res.Tenants = len(tenants)
	res.Stream = streamRead(sc, 1, scanned)
	sortDifferences(res.Differences)
	return res, nil
}

func sortDifferences(ds []Difference) {
	sort.SliceStable(ds, func(i, j int) bool {
		a, b := ds[i], ds[j]
		if a.Tenant != b.Tenant {
			return a.Tenant < b.Tenant
		}
		if a.Check != b.Check {
			return a.Check < b.Check
		}
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		return a.Key < b.Key
	})
}

// totalsFold sums all-time totals per tenant from accepted events, on its
// own: usage recorded, corrections, and the actual usage of reconciled
// reservations (a reservation counts once, while open, as the projector
// settles it).
type totalsFold struct {
	totals      map[string]map[events.Metric]int64
	open        map[string]bool
	seenTenants map[string]bool
}

func newTotalsFold() *totalsFold {
	return &totalsFold{totals: map[string]map[events.Metric]int64{}, open: map[string]bool{}, seenTenants: map[string]bool{}}
}

func (f *totalsFold) add(r *Record) {
	if r.Status != Accepted {
		return
	}
	ev := &r.Event
	f.seenTenants[ev.Tenant] = true
	switch p := ev.Payload.(type) {
	case *events.UsageRecorded:
		f.addAmounts(ev.Tenant, &p.Amounts)
	case *events.UsageCorrected:
		f.addAmounts(ev.Tenant, &p.Delta)
	case *events.ReservationCreated:
		f.open[ev.Tenant+"\x00"+p.Reservation] = true
	case *events.ReservationReconciled:
		if k := ev.Tenant + "\x00" + p.Reservation; f.open[k] {
			delete(f.open, k)
			f.addAmounts(ev.Tenant, &p.Actual)
		}
	case *events.ReservationReleased:
		delete(f.open, ev.Tenant+"\x00"+p.Reservation)
	case *events.ReservationExpired:
		delete(f.open, ev.Tenant+"\x00"+p.Reservation)
	}
}

func (f *totalsFold) addAmounts(tenant string, a *events.Amounts) {
	m := f.totals[tenant]
	if m == nil {
		m = map[events.Metric]int64{}
		f.totals[tenant] = m
	}
	m[events.MetricTokens] += a.TotalTokens()
	m[events.MetricInputTokens] += a.InputTokens
	m[events.MetricOutputTokens] += a.OutputTokens
	m[events.MetricRequests] += a.Requests
	m[events.MetricCost] += a.Cost
	for name, n := range a.Actions {
		m[events.ActionMetric(name)] += n
	}
}

func storeTotals(s *projections.Store) (map[string]map[events.Metric]int64, error) {
	out := map[string]map[events.Metric]int64{}
	err := s.Scan(func(e *projections.Entry) error {
		if e.Kind != projections.EntryTotal {
			return nil
		}
		m := out[e.Tenant]
		if m == nil {
			m = map[events.Metric]int64{}
			out[e.Tenant] = m
		}
		m[e.Metric] = e.Int
		return nil
	})
	return out, err
}

// compareTotals lists every metric of every tenant whose totals differ; a
// missing total is zero.
func compareTotals(want, got map[string]map[events.Metric]int64) []Difference {
	tenants := map[string]bool{}
	for t := range want {
		tenants[t] = true
	}
	for t := range got {
		tenants[t] = true
	}
	var out []Difference
	for t := range tenants {
		metrics := map[events.Metric]bool{}
		for m := range want[t] {
			metrics[m] = true
		}
		for m := range got[t] {
			metrics[m] = true
		}
		for m := range metrics {
			w, g := want[t][m], got[t][m]
			if w != g {
				out = append(out, Difference{Tenant: t, Kind: "total", Key: "metric=" + string(m),
					Recomputed: strconv.FormatInt(w, 10), Live: strconv.FormatInt(g, 10), Check: "totals"})
			}
		}
	}
	return out
}

// compareStores walks both stores in key order and lists every entry that
// differs once normalised (see Normalize).
func compareStores(want, got *projections.Store, tenants map[string]bool, out *[]Difference) error {
	wi, err := want.DB().NewIter(nil)
	if err != nil {
		return err
	}
	defer wi.Close()
	gi, err := got.DB().NewIter(nil)
	if err != nil {
		return err
	}
	defer gi.Close()
	wi.First()
	gi.First()
	next := func(it *pebble.Iterator) (*projections.Entry, []byte, error) {
		for it.Valid() {
			v, err := it.ValueAndErr()
			if err != nil {
				return nil, nil, err
			}
			e := projections.ParseEntry(bytes.Clone(it.Key()), bytes.Clone(v))
			nv, keep, err := Normalize(&e)
			if err != nil {
				return nil, nil, err
			}
			if keep {
				return &e, nv, nil
			}
			it.Next()
		}
		return nil, nil, it.Error()
	}
	for {
		we, wv, err := next(wi)
		if err != nil {
			return err
		}
		ge, gv, err := next(gi)
		if err != nil {
			return err
		}
		if we == nil && ge == nil {
			return nil
		}
		c := 0
		switch {
		case we == nil:
			c = 1
		case ge == nil:
			c = -1
		default:
			c = bytes.Compare(we.Key, ge.Key)
		}
		switch {
		case c < 0:
			tenants[we.Tenant] = true
			*out = append(*out, describe(we, wv, nil, nil))
			wi.Next()
		case c > 0:
			tenants[ge.Tenant] = true
			*out = append(*out, describe(nil, nil, ge, gv))
			gi.Next()
		default:
			tenants[we.Tenant] = true
			if !bytes.Equal(wv, gv) {
				*out = append(*out, describe(we, wv, ge, gv))
			}
			wi.Next()
			gi.Next()
		}
	}
}

// describe turns a differing entry (either side may be nil) into a
// Difference a reader can act on.
func describe(we *projections.Entry, wv []byte, ge *projections.Entry, gv []byte) Difference {
	e := we
	if e == nil {
		e = ge
	}
	d := Difference{Tenant: e.Tenant, Kind: e.Kind.String(), Check: "state", Recomputed: "absent", Live: "absent"}
	show := func(x *projections.Entry, v []byte) string {
		switch x.Kind {
		case projections.EntryTenant, projections.EntryExpiry:
			return "present"
		case projections.EntryUnknown:
			return fmt.Sprintf("%x", v)
		}
		return strconv.FormatInt(x.Int, 10)
	}
	if we != nil {
		d.Recomputed = show(we, wv)
	}
	if ge != nil {
		d.Live = show(ge, gv)
	}
	switch e.Kind {
	case projections.EntryCounter:
		k := e.Counter
		side := "used"
		if k.Reserved {
			side = "reserved"
		}
		d.Key = fmt.Sprintf("quota=%s epoch=%d split=%q limit=%s bucket=%s %s", k.Quota, k.Epoch, k.Split, k.Limit,
			time.Unix(k.Bucket, 0).UTC().Format(time.RFC3339), side)
	case projections.EntryTotal:
		d.Key = "metric=" + string(e.Metric)
	case projections.EntrySeen:
		d.Key = "id=" + e.ID
	case projections.EntryExpiry:
		d.Key = fmt.Sprintf("reservation=%s expires=%s", e.ID, time.Unix(0, e.Int).UTC().Format(time.RFC3339Nano))
	case projections.EntryApplied:
		d.Key = "applied_seq"
	case projections.EntryTenant:
		d.Key = "state"
		if we != nil && ge != nil {
			d.Key, d.Recomputed, d.Live = stateFields(wv, gv)
		}
	default:
		d.Key = fmt.Sprintf("%x", e.Key)
	}
	return d
}

// stateFields names the top-level fields in which two canonical tenant
// states differ, with both values as JSON.
func stateFields(a, b []byte) (string, string, string) {
	var ma, mb map[string]any
	if msgpack.Unmarshal(a, &ma) != nil || msgpack.Unmarshal(b, &mb) != nil {
		return "state", fmt.Sprintf("%x", a), fmt.Sprintf("%x", b)
	}
	keys := map[string]bool{}
	for k := range ma {
		keys[k] = true
	}
	for k := range mb {
		keys[k] = true
	}
	var names []string
	for k := range keys {
		ea, _ := msgpack.Marshal(ma[k])
		eb, _ := msgpack.Marshal(mb[k])
		ca, _ := CanonicalMsgpack(ea)
		cb, _ := CanonicalMsgpack(eb)
		if !bytes.Equal(ca, cb) {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	pick := func(m map[string]any) string {
		sub := map[string]any{}
		for _, n := range names {
			sub[n] = m[n]
		}
		b, err := json.Marshal(sub)
		if err != nil {
			return fmt.Sprint(sub)
		}
		if len(b) > 400 {
			return string(b[:400]) + "..."
		}
		return string(b)
	}
	key := "state"
	for i, n := range names {
		if i == 0 {
			key += " fields="
		} else {
			key += ","
		}
		key += n
	}
	return key, pick(ma), pick(mb)
}

// ErrDifferences is returned (wrapped) by tools when an audit found
// differences.
var ErrDifferences = errors.New("the live projection differs from the stream")
