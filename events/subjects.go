package events

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
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

// ClassOf returns the subject class an event type is appended under. The
// ledger also appends usage.recorded on the decision subject: the usage of a
// consume decision, and of a reconciliation after its reservation expired
// (see CheckPlacement).
func ClassOf(t Type) string {
	switch t {
	case TypeUsageRecorded, TypeUsageCorrected:
		return ClassUsage
	case TypeQuotaSet, TypeQuotaDeleted, TypeCounterReset, TypePlanSet:
		return ClassAdmin
	}
	return ClassDecision
}

// ParseSubject splits a stream subject, ledger.ev.<partition>.<tenant>.<class>,
// and fails unless it is a subject the ledger writes: a valid tenant, a
// known class, and the tenant's own partition spelled as Subject spells it
// (strconv.Itoa(Partition(tenant))). Every fold refuses a message on any
// other subject whole.
func ParseSubject(s string) (tenant, class string, err error) {
	rest, ok := strings.CutPrefix(s, SubjectPrefix+".")
	if !ok {
		return "", "", fmt.Errorf("not a ledger event subject: %s", s)
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 3 {
		return "", "", fmt.Errorf("not a ledger event subject (%s.<partition>.<tenant>.<class>): %s", SubjectPrefix, s)
	}
	part, tenant, class := parts[0], parts[1], parts[2]
	if !ValidTenant(tenant) {
		return "", "", fmt.Errorf("not a ledger event subject, the tenant is not valid: %s", s)
	}
	switch class {
	case ClassUsage, ClassDecision, ClassAdmin:
	default:
		return "", "", fmt.Errorf("not a ledger event subject, unknown class %q: %s", class, s)
	}
	if want := strconv.Itoa(Partition(tenant)); part != want {
		return "", "", fmt.Errorf("not a ledger event subject, tenant %s is in partition %s, not %q: %s", tenant, want, part, s)
	}
	return tenant, class, nil
}

// ErrMisplaced is wrapped by every CheckPlacement error.
var ErrMisplaced = errors.New("misplaced event")

// CheckPlacement says why an event read from a message on tenant's subject
// of class (as ParseSubject returned them) must not be folded, or returns
// nil. An event is folded only from its own tenant's subject of its own
// class (ClassOf), with one exception: usage.recorded is also folded from
// the decision subject, where the ledger appends the usage it decides
// (consumes, and reconciliations after expiry), fenced with its other
// decisions.
//
// The subject is what NATS permissions vouch for, the payload is what a
// client wrote: a producer confined to a tenant's usage subject can report
// that tenant's usage and nothing else, not another tenant's events, nor a
// reservation, a quota, a reset or any other decision of the ledger. (The
// payload's Decided flag is not consulted: the fold does not read it.)
func CheckPlacement(tenant, class string, ev *Event) error {
	if ev.Tenant != tenant {
		return fmt.Errorf("%w: event %s of tenant %s on a subject of tenant %s", ErrMisplaced, ev.ID, ev.Tenant, tenant)
	}
	if own := ClassOf(ev.Type); own != class && (ev.Type != TypeUsageRecorded || class != ClassDecision) {
		return fmt.Errorf("%w: event %s of type %s (class %s) on %s's %s subject", ErrMisplaced, ev.ID, ev.Type, own, tenant, class)
	}
	return nil
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

// A barrier is what a member appends, on ledger.ev.<partition>.barrier,
// before it claims a partition of a replicated stream: the append's
// acknowledgement needs the stream's quorum, so its sequence is the true
// end of the partition then, where a read of the leader may not be (just
// after a network partition heals, a node that led on the cut-off side can
// still answer as leader, with its old last sequence). The member folds up
// to the barrier before it answers. Every fold skips barriers: they carry
// no event.
const barrierClass = "barrier"

// BarrierSubject is the subject of partition p's barriers.
func BarrierSubject(p int) string {
	return SubjectPrefix + "." + strconv.Itoa(p) + "." + barrierClass
}

// IsBarrier reports whether subject is a barrier's.
func IsBarrier(subject string) bool {
	rest, ok := strings.CutPrefix(subject, SubjectPrefix+".")
	if !ok {
		return false
	}
	p, class, ok := strings.Cut(rest, ".")
	if !ok || class != barrierClass {
		return false
	}
	n, err := strconv.Atoi(p)
	return err == nil && n >= 0 && n < Partitions && strconv.Itoa(n) == p
}
