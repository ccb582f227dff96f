package events

import (
	"crypto/sha256"
	"encoding/hex"
	"hash/fnv"
	"strconv"
)

// The stream's subject layout: ledger.ev.<partition>.<tenant>.<class>.
//
// The partition is FNV-32a of the tenant modulo Partitions, the function NATS
// subject mapping uses, so a projector can own a set of partitions with a
// filter (ledger.ev.3.>) and a later server-side mapping agrees with clients.
// The class separates producer facts from ledger decisions, so decisions can
// be fenced on their own subject with an expected last sequence while
// producers append usage freely.
const (
	StreamName    = "LEDGER"
	SubjectPrefix = "ledger.ev"
	// Partitions is fixed for the life of a stream.
	Partitions = 16
)

// Subject classes.
const (
	ClassUsage    = "usage"    // usage reported by producers after the fact
	ClassDecision = "decision" // reservations, consumes, workflows, retry signals: decided by the ledger
	ClassAdmin    = "admin"    // quotas, plans, resets
)

// Partition returns the partition of a tenant.
func Partition(tenant string) int {
	h := fnv.New32a()
	h.Write([]byte(tenant))
	return int(h.Sum32() % Partitions)
}

// Subject returns the stream subject for a tenant's events of a class.
func Subject(tenant, class string) string {
	return SubjectPrefix + "." + strconv.Itoa(Partition(tenant)) + "." + tenant + "." + class
}

// PartitionFilter returns the filter subject of one partition.
func PartitionFilter(p int) string { return SubjectPrefix + "." + strconv.Itoa(p) + ".>" }

// ClassOf returns the subject class an event type is appended under.
func ClassOf(t Type) string {
	switch t {
	case TypeUsageRecorded, TypeUsageCorrected:
		return ClassUsage
	case TypeQuotaSet, TypeQuotaDeleted, TypeCounterReset, TypePlanSet:
		return ClassAdmin
	}
	return ClassDecision
}

// BatchID is the Nats-Msg-Id of a stream message carrying evs: a hash of
// their tenants and IDs, so a retried batch is the same message to the
// stream's duplicate window. Each event ID is also deduplicated by the
// projection, so a retry that groups events differently still counts once.
func BatchID(evs []Event) string {
	h := sha256.New()
	for i := range evs {
		h.Write([]byte(evs[i].Tenant))
		h.Write([]byte{0})
		h.Write([]byte(evs[i].ID))
		h.Write([]byte{0})
	}
	return "b-" + hex.EncodeToString(h.Sum(nil)[:16])
}
