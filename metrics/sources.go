package metrics

import (
	"context"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ledgerworks/ledger/api"
	"github.com/ledgerworks/ledger/projections"
)

// Sources are what the metrics read at each scrape. A nil field leaves its
// metrics out.
type Sources struct {
	// Projector is the process's projection: what it has folded, and its
	// open reservations.
	Projector *projections.Projector
	// Store is the projection's Pebble store.
	Store *projections.Store
	// Conn is the process's connection to NATS.
	Conn *nats.Conn
	// Partitions returns the partitions the process folds and what it does
	// for each: api.PartitionStatus.State is owner, standby or follower.
	Partitions func() []api.PartitionStatus
	// Stream reads the stream: its last sequence and how far the
	// projection is behind in each partition it folds. It gets Timeout.
	Stream  func(ctx context.Context) (StreamState, error)
	Timeout time.Duration // default 5 s
}

// StreamState is the stream as one scrape saw it.
type StreamState struct {
	LastSeq uint64
	Lag     []PartitionLag
}

// PartitionLag is how far a projection is behind the stream in one
// partition: the partition's messages past its applied sequence, and the
// stream time of the oldest of them (zero when there are none).
type PartitionLag struct {
	Partition int
	Messages  uint64
	Oldest    time.Time
}

// Seconds is how long the oldest message not folded has waited at now (0
// when none waits).
func (l PartitionLag) Seconds(now time.Time) float64 {
	if l.Messages == 0 || l.Oldest.IsZero() {
		return 0
	}
	return max(now.Sub(l.Oldest).Seconds(), 0)
}

// PartitionStates are the values of ledger_partition_state's state label.
var PartitionStates = []string{"owner", "standby", "follower"}

// Watch registers the metrics read from s at each scrape.
func (m *Metrics) Watch(s Sources) error {
	if s.Timeout <= 0 {
		s.Timeout = 5 * time.Second
	}
	return m.reg.Register(&collector{s: s})
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	// The fold, from projections.Stats.
	messagesDesc   = desc("ledger_projection_messages_total", "Stream messages the projector has folded (each a batch of one tenant's events), refused ones included.")
	ingestedDesc   = desc("ledger_projection_events_ingested_total", "Events folded into the projection: valid, on their own tenant's subject of their class, and not folded before.")
	duplicatesDesc = desc("ledger_projection_duplicates_dropped_total", "Events dropped by the projector because an event with the same tenant and id was folded already (a producer's retry).")
	rejectedDesc   = desc("ledger_projection_rejected_total", "Events and whole messages the projector refused: a subject that is not a ledger event subject, a message that does not decode, an invalid event or one not in its place.")
	createdDesc    = desc("ledger_reservations_created_total", "Reservations the projector has seen created (folded).")
	settledDesc    = desc("ledger_reservations_settled_total", "Reservations the projector has seen settled (folded), by outcome: reconciled, released or expired.", "outcome")
	openDesc       = desc("ledger_reservations_open", "Reservations open in the projection (counted from the store at start, then kept by the fold).")
	tokensDesc     = desc("ledger_reservations_reserved_tokens", "Tokens the open reservations' estimates hold.")
	requestsDesc   = desc("ledger_reservations_reserved_requests", "Requests the open reservations' estimates hold.")
	costDesc       = desc("ledger_reservations_reserved_cost", "Cost the open reservations' estimates hold, in the unit the tenants' quotas count cost in.")

	// Partitions and the stream.
	appliedDesc     = desc("ledger_projection_applied_sequence", "The last stream sequence folded into the projection, for each partition it folds (one projector folds its partitions together: they show the same value).", "partition")
	lagMessagesDesc = desc("ledger_projection_lag_messages", "Stream messages of the partition not folded yet.", "partition")
	lagSecondsDesc  = desc("ledger_projection_lag_seconds", "How long the partition's oldest message not folded yet has been in the stream (0 when the projection has folded them all).", "partition")
	stateDesc       = desc("ledger_partition_state", "What the process does for each partition it folds: 1 for the state it is in (owner answers and decides, standby folds to take over, follower is a standalone projector), 0 for the others.", "partition", "state")
	streamLastDesc  = desc("ledger_stream_last_sequence", "The stream's last sequence.")
	streamUpDesc    = desc("ledger_stream_up", "1 when the stream answered this scrape (its last sequence and the lag metrics are then current), 0 when it did not.")

	// Pebble.
	compactionsDesc = desc("ledger_pebble_compactions_total", "Compactions the projection's Pebble store has run since it was opened.")
	compactDebtDesc = desc("ledger_pebble_compaction_debt_bytes", "Pebble's estimate of the bytes that must be compacted for the store to reach a stable shape.")
	flushesDesc     = desc("ledger_pebble_flushes_total", "Memtable flushes since the store was opened.")
	cacheHitsDesc   = desc("ledger_pebble_block_cache_hits_total", "Block cache hits since the store was opened.")
	cacheMissDesc   = desc("ledger_pebble_block_cache_misses_total", "Block cache misses since the store was opened.")
	cacheSizeDesc   = desc("ledger_pebble_block_cache_size_bytes", "Bytes in the block cache (memtables are charged to it too).")
	readAmpDesc     = desc("ledger_pebble_read_amplification", "Pebble's read amplification: the sublevels and levels a read may have to look in.")
	diskDesc        = desc("ledger_pebble_disk_usage_bytes", "Disk space the store uses (tables, WAL, manifests).")
	memtableDesc    = desc("ledger_pebble_memtable_size_bytes", "Bytes allocated by the memtables.")

	// NATS.
	reconnectsDesc = desc("ledger_nats_reconnects_total", "Times the process's NATS connection has reconnected.")
	connectedDesc  = desc("ledger_nats_connected", "1 while the process's NATS connection is connected.")
)

var allDescs = []*prometheus.Desc{
	messagesDesc, ingestedDesc, duplicatesDesc, rejectedDesc, createdDesc, settledDesc, openDesc, tokensDesc, requestsDesc, costDesc,
	appliedDesc, lagMessagesDesc, lagSecondsDesc, stateDesc, streamLastDesc, streamUpDesc,
	compactionsDesc, compactDebtDesc, flushesDesc, cacheHitsDesc, cacheMissDesc, cacheSizeDesc, readAmpDesc, diskDesc, memtableDesc,
	reconnectsDesc, connectedDesc,
}

// collector reads Sources at each scrape.
type collector struct{ s Sources }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	if p := c.s.Projector; p != nil {
		st := p.Stats()
		counter(messagesDesc, st.Messages)
		counter(ingestedDesc, st.Events)
		counter(duplicatesDesc, st.Duplicates)
		counter(rejectedDesc, st.Rejected)
		counter(createdDesc, st.Created)
		counter(settledDesc, st.Reconciled, projections.OutcomeReconciled)
		counter(settledDesc, st.Released, projections.OutcomeReleased)
		counter(settledDesc, st.Expired, projections.OutcomeExpired)
		gauge(openDesc, float64(st.Open))
		gauge(tokensDesc, float64(st.Reserved.Tokens))
		gauge(requestsDesc, float64(st.Reserved.Requests))
		gauge(costDesc, float64(st.Reserved.Cost))
	}
	if c.s.Partitions != nil {
		for _, ps := range c.s.Partitions() {
			part := strconv.Itoa(ps.Partition)
			if c.s.Projector != nil {
				gauge(appliedDesc, float64(c.s.Projector.Applied()), part)
			}
			for _, state := range PartitionStates {
				v := 0.0
				if ps.State == state {
					v = 1
				}
				gauge(stateDesc, v, part, state)
			}
		}
	}
	if c.s.Stream != nil {
		ctx, cancel := context.WithTimeout(context.Background(), c.s.Timeout)
		st, err := c.s.Stream(ctx)
		cancel()
		if err != nil {
			gauge(streamUpDesc, 0)
		} else {
			gauge(streamUpDesc, 1)
			gauge(streamLastDesc, float64(st.LastSeq))
			now := time.Now()
			for _, l := range st.Lag {
				part := strconv.Itoa(l.Partition)
				gauge(lagMessagesDesc, float64(l.Messages), part)
				gauge(lagSecondsDesc, l.Seconds(now), part)
			}
		}
	}
	if s := c.s.Store; s != nil {
		pm := s.DB().Metrics()
		counter(compactionsDesc, uint64(pm.Compact.Count))
		gauge(compactDebtDesc, float64(pm.Compact.EstimatedDebt))
		counter(flushesDesc, uint64(pm.Flush.Count))
		counter(cacheHitsDesc, uint64(pm.BlockCache.Hits))
		counter(cacheMissDesc, uint64(pm.BlockCache.Misses))
		gauge(cacheSizeDesc, float64(pm.BlockCache.Size))
		gauge(readAmpDesc, float64(pm.ReadAmp()))
		gauge(diskDesc, float64(pm.DiskSpaceUsage()))
		gauge(memtableDesc, float64(pm.MemTable.Size))
	}
	if nc := c.s.Conn; nc != nil {
		counter(reconnectsDesc, nc.Stats().Reconnects)
		connected := 0.0
		if nc.IsConnected() {
			connected = 1
		}
		gauge(connectedDesc, connected)
	}
}
