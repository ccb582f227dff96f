// Package cluster decides which member of a ledger cluster owns each
// partition: the one process that answers the partition's requests and
// makes its decisions, while other members stand by, folding the same
// partition, ready to take over.
//
// Ownership is a lease per partition in a JetStream key-value bucket whose
// entries expire after the lease's TTL: the owner renews its lease well
// within the TTL with a compare-and-set on the revision it holds, and stops
// serving the moment a renewal is refused or it cannot renew in time. A
// standby claims a lapsed lease with a create, which only one claimant can
// win. The revision of the claim is the owner's epoch.
//
// A lease is not exclusivity: a paused owner may still act for a moment
// after its lease lapsed (ADR-42 says as much of pinned consumers). The
// ledger does not rely on it for correctness: every decision is appended
// with the tenant's expected last subject sequence, so a deposed owner's
// decision on stale state is refused by the stream. Leases keep the answers
// in one place; the fence keeps them exact.
//
// Assignment (which partitions a member prefers to own and which it stands
// by for) is plain data, parsed and checked here without any I/O. Members
// gathers what every member says of itself on ledger.cluster.status.
package cluster
