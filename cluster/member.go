package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Bucket is the key-value bucket holding the partitions' leases, one key
// per partition ("p.<n>").
const Bucket = "LEDGER_OWNERS"

// Options configure a Member.
type Options struct {
	// Name identifies the member; it must be unique in the cluster and stay
	// the same across restarts, so a restarted member takes back the leases
	// its earlier incarnation held without waiting for them to lapse.
	Name       string
	Assignment Assignment
	// Replicas of the lease bucket (default 1; 3 on a 3-node cluster).
	Replicas int
	// LeaseTTL is how long a lease outlives its last renewal (default 2 s).
	// An owner renews every LeaseTTL/4 and stops serving a partition once
	// it has failed to renew for LeaseTTL - LeaseTTL/4; a standby claims a
	// lapsed lease after a further LeaseTTL/4. Failover so takes about
	// LeaseTTL to 1.5 LeaseTTL after an owner dies.
	LeaseTTL time.Duration
	Logger   *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 2 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Handler is what the member's owner does with the partitions it wins and
// loses. Own is called from one goroutine; Disown may be called for
// several partitions at once (renewals run together).
type Handler interface {
	// CatchUp returns once the member may answer for partition p: its
	// projection has folded the stream as it is now. The member claims p
	// only after it returns nil, so a revived owner does not answer from
	// old state.
	CatchUp(ctx context.Context, p int) error
	// Own starts answering for p; epoch is the lease's revision at the
	// claim, larger than any earlier owner's.
	Own(p int, epoch uint64) error
	// Disown stops answering for p at once.
	Disown(p int)
}

// PartitionState is what a member knows of one partition it folds.
type PartitionState struct {
	Partition int
	Owned     bool
	// Epoch is the revision of this member's claim, while it owns p.
	Epoch uint64
	// Owner is the member holding p's lease when last looked at ("" for
	// none).
	Owner string
}

// lease is the member's view of one partition's lease.
type lease struct {
	partition   int
	owned       bool
	rev         uint64    // revision of the member's last write, while owned
	epoch       uint64    // revision of the claim
	renewed     time.Time // when the last successful write was sent
	absentSince time.Time // when a standby first saw the lease free
	owner       string
	askBack     string // a standby holding the preferred partition, to ask
}

// leaseValue is what a lease key holds.
type leaseValue struct {
	Member string    `json:"member"`
	Since  time.Time `json:"since"`
	// Standby is set when the holder only stands by for the partition:
	// its preferred owner may ask for it back.
	Standby bool `json:"standby,omitempty"`
}

// HandbackSubject is where a member takes requests to give back a
// partition it holds only as a standby ("ledger.cluster.handback.<member>",
// the body the partition's number): its preferred owner, back and caught
// up, asks for it, so that after a failover and a restart the partitions
// return to the members they are assigned to.
const HandbackSubject = "ledger.cluster.handback"

// Member holds and renews the leases of the partitions it owns and watches
// the others it folds.
type Member struct {
	opts Options
	kv   jetstream.KeyValue
	nc   *nats.Conn
	h    Handler
	log  *slog.Logger
	sub  *nats.Subscription
	// op is held by each tick and each hand-back: the leases' state is
	// theirs.
	op sync.Mutex

	mu     sync.Mutex
	leases []*lease

	cancel context.CancelFunc
	done   chan struct{}
}

// Join creates (or updates) the lease bucket, claims at once every
// partition the member prefers that is free or was its own, and keeps
// claiming and renewing in the background until Leave.
func Join(ctx context.Context, js jetstream.JetStream, opts Options, h Handler) (*Member, error) {
	opts = opts.withDefaults()
	if opts.Name == "" {
		return nil, errors.New("cluster: a member needs a name")
	}
	if err := opts.Assignment.Validate(); err != nil {
		return nil, err
	}
	kv, err := leaseBucket(ctx, js, opts)
	if err != nil {
		return nil, err
	}
	m := &Member{opts: opts, kv: kv, nc: js.Conn(), h: h, log: opts.Logger.With("member", opts.Name), done: make(chan struct{})}
	for _, p := range opts.Assignment.Partitions() {
		m.leases = append(m.leases, &lease{partition: p})
	}
	if m.sub, err = m.nc.Subscribe(HandbackSubject+"."+opts.Name, m.handBack); err != nil {
		return nil, err
	}
	m.tick(ctx)
	runCtx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go m.run(runCtx)
	return m, nil
}

// leaseBucket creates or updates the lease bucket. On a cluster that has
// just formed, the first requests can time out while the bucket's replicas
// elect a leader, so it tries again until ctx ends (or for a minute).
func leaseBucket(ctx context.Context, js jetstream.JetStream, opts Options) (jetstream.KeyValue, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cfg := jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "ledger partition owners: one lease per partition",
		History:     1,
		TTL:         opts.LeaseTTL,
		Storage:     jetstream.MemoryStorage, // leases need not outlive the cluster
		Replicas:    opts.Replicas,
	}
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		kv, err := js.CreateOrUpdateKeyValue(actx, cfg)
		cancel()
		if err == nil {
			return kv, nil
		}
		opts.Logger.Info("lease bucket not ready yet", "bucket", Bucket, "err", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("lease bucket %s: %w", Bucket, err)
		case <-time.After(wait):
		}
	}
}

// Partitions returns the state of every partition the member folds.
func (m *Member) Partitions() []PartitionState {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]PartitionState, len(m.leases))
	for i, l := range m.leases {
		out[i] = PartitionState{Partition: l.partition, Owned: l.owned, Epoch: l.epoch, Owner: l.owner}
	}
	return out
}

// Owns reports whether the member owns partition p now.
func (m *Member) Owns(p int) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, l := range m.leases {
		if l.partition == p {
			return l.owned
		}
	}
	return false
}

// Leave stops answering for every owned partition and gives up its leases,
// so standbys take over at once instead of after the TTL (a rolling
// restart).
func (m *Member) Leave(ctx context.Context) {
	_ = m.sub.Unsubscribe()
	m.cancel()
	<-m.done
	m.op.Lock()
	defer m.op.Unlock()
	for _, l := range m.leases {
		if !l.owned {
			continue
		}
		m.disown(l, slog.LevelInfo, "leaving")
		if err := m.kv.Delete(ctx, key(l.partition), jetstream.LastRevision(l.rev)); err != nil {
			m.log.Warn("give up lease", "partition", l.partition, "err", err)
		}
	}
}

func (m *Member) run(ctx context.Context) {
	defer close(m.done)
	t := time.NewTicker(m.opts.LeaseTTL / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m.tick(ctx)
	}
}

// tick renews the leases the member holds and tries to claim the others.
// Once catching up has failed for one partition, it claims no more in this
// tick: the partitions share one projection, and the renewals must not
// wait behind a string of timeouts.
//
// Partitions a standby holds that this member prefers are asked back after
// the tick, without m.op held: two members may be asking each other at once.
func (m *Member) tick(ctx context.Context) {
	m.op.Lock()
	// Renewals go out together: one by one, a bucket that does not answer
	// would hold the last partition's renewal for every timeout before it.
	var renewals sync.WaitGroup
	for _, l := range m.leases {
		if l.owned {
			renewals.Add(1)
			go func() {
				defer renewals.Done()
				m.renew(ctx, l)
			}()
		}
	}
	renewals.Wait()
	behind := false
	var asks []*lease
	for _, l := range m.leases {
		if ctx.Err() != nil {
			break
		}
		if !l.owned && !behind {
			behind = !m.claim(ctx, l)
		}
		if l.askBack != "" {
			asks = append(asks, l)
		}
	}
	m.op.Unlock()
	for _, l := range asks {
		given := m.askBackFrom(l.askBack, l.partition)
		m.op.Lock()
		l.askBack = ""
		if given && ctx.Err() == nil {
			m.claim(ctx, l) // free now, and ours to take at once
		}
		m.op.Unlock()
	}
}

func key(p int) string { return "p." + strconv.Itoa(p) }

func (m *Member) value(p int) []byte {
	b, _ := json.Marshal(leaseValue{Member: m.opts.Name, Since: time.Now().UTC(), Standby: !m.opts.Assignment.Prefers(p)})
	return b
}

// opTimeout bounds one key-value request, so that one partition's stuck
// request cannot make the member miss the others' renewals.
func (m *Member) opTimeout() time.Duration { return m.opts.LeaseTTL / 4 }

func (m *Member) renew(ctx context.Context, l *lease) {
	octx, cancel := context.WithTimeout(ctx, m.opTimeout())
	defer cancel()
	sent := time.Now()
	rev, err := m.kv.Update(octx, key(l.partition), m.value(l.partition), l.rev)
	switch {
	case err == nil:
		m.mu.Lock()
		l.rev, l.renewed = rev, sent
		m.mu.Unlock()
	case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch):
		// (ErrKeyRevisionMismatch: how a replicated bucket says it.)
		// Another write reached the key: the lease lapsed and was claimed,
		// or lapsed and is gone.
		m.disown(l, slog.LevelWarn, "lease taken or lapsed")
	case time.Since(l.renewed) > m.opts.LeaseTTL-m.opts.LeaseTTL/4:
		// Unable to renew (no quorum, no connection) for most of the TTL:
		// a standby may claim the lease soon, so stop answering now.
		m.disown(l, slog.LevelWarn, "cannot renew: "+err.Error())
	default:
		m.log.Debug("renew lease", "partition", l.partition, "err", err)
	}
}

// claim takes l's lease if it is free (or was the member's own) and the
// member has caught up; it returns false when catching up failed.
func (m *Member) claim(ctx context.Context, l *lease) bool {
	octx, cancel := context.WithTimeout(ctx, m.opTimeout())
	e, err := m.kv.Get(octx, key(l.partition))
	cancel()
	var held leaseValue
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		m.setOwner(l, "")
		if !m.opts.Assignment.Prefers(l.partition) {
			// A standby leaves a free lease to its preferred owner for a
			// while (at start, both see every lease free).
			if l.absentSince.IsZero() {
				l.absentSince = time.Now()
			}
			if time.Since(l.absentSince) < m.opts.LeaseTTL/4 {
				return true
			}
		}
	case err != nil:
		m.log.Debug("read lease", "partition", l.partition, "err", err)
		return true
	default:
		l.absentSince = time.Time{}
		if json.Unmarshal(e.Value(), &held) != nil {
			held.Member = "?"
		}
		m.setOwner(l, held.Member)
		switch {
		case held.Member == m.opts.Name:
			// Our own lease, from before a restart: take it back at once.
		case held.Standby && m.opts.Assignment.Prefers(l.partition):
			// A standby holds our partition (it took over while we were
			// gone): ask for it back once caught up.
		default:
			return true
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = m.h.CatchUp(cctx, l.partition)
	cancel()
	if err != nil {
		m.log.Info("not claiming: projection not caught up", "partition", l.partition, "err", err)
		return false
	}
	if held.Member != "" && held.Member != m.opts.Name {
		l.askBack = held.Member // once the tick has let go of m.op
		return true
	}
	octx, cancel = context.WithTimeout(ctx, m.opTimeout())
	defer cancel()
	sent := time.Now()
	var rev uint64
	if held.Member == m.opts.Name {
		rev, err = m.kv.Update(octx, key(l.partition), m.value(l.partition), e.Revision())
	} else {
		rev, err = m.kv.Create(octx, key(l.partition), m.value(l.partition))
	}
	if err != nil {
		m.log.Debug("claim lease", "partition", l.partition, "err", err)
		return true
	}
	m.mu.Lock()
	l.owned, l.rev, l.epoch, l.renewed, l.absentSince, l.owner = true, rev, rev, sent, time.Time{}, m.opts.Name
	m.mu.Unlock()
	if err := m.h.Own(l.partition, rev); err != nil {
		m.log.Error("serve partition", "partition", l.partition, "err", err)
		m.disown(l, slog.LevelError, "could not serve")
		_ = m.kv.Delete(ctx, key(l.partition), jetstream.LastRevision(rev))
		return true
	}
	m.log.Info("owner of partition", "partition", l.partition, "epoch", rev)
	return true
}

// askBackFrom asks holder to give partition p back; it reports whether
// the holder did.
func (m *Member) askBackFrom(holder string, p int) bool {
	msg, err := m.nc.Request(HandbackSubject+"."+holder, []byte(strconv.Itoa(p)), m.opTimeout())
	if err != nil || string(msg.Data) != "ok" {
		m.log.Debug("ask for partition back", "partition", p, "holder", holder, "err", err)
		return false
	}
	m.log.Info("partition given back by its standby", "partition", p, "holder", holder)
	return true
}

// handBack gives up a partition the member holds only as a standby, when
// its preferred owner asks.
func (m *Member) handBack(msg *nats.Msg) {
	m.op.Lock()
	defer m.op.Unlock()
	p, err := strconv.Atoi(string(msg.Data))
	for _, l := range m.leases {
		if err != nil || l.partition != p || !l.owned || m.opts.Assignment.Prefers(p) {
			continue
		}
		m.disown(l, slog.LevelInfo, "given back to its preferred owner")
		ctx, cancel := context.WithTimeout(context.Background(), m.opTimeout())
		err = m.kv.Delete(ctx, key(p), jetstream.LastRevision(l.rev))
		cancel()
		if err == nil {
			_ = msg.Respond([]byte("ok"))
			return
		}
	}
	_ = msg.Respond([]byte("no"))
}

func (m *Member) setOwner(l *lease, owner string) {
	m.mu.Lock()
	l.owner = owner
	m.mu.Unlock()
}

func (m *Member) disown(l *lease, level slog.Level, why string) {
	m.h.Disown(l.partition)
	m.mu.Lock()
	l.owned, l.owner = false, ""
	m.mu.Unlock()
	m.log.Log(context.Background(), level, "no longer owner of partition", "partition", l.partition, "epoch", l.epoch, "why", why)
}
