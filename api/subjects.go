package api

import (
	"strconv"
	"strings"

	"github.com/ledgerworks/ledger/events"
)

// Requests are addressed by tenant: a client sends an operation's subject
// (SubjectCheck, SubjectQuotaSet, ...) with the tenant as its last token,
// ledger.v1.<op>.<tenant>. The NATS server maps that subject, with the
// partition() function of subject mapping, to the partition's subject
// ledger.v1.p.<partition>.<op>.<tenant>, and only the partition's owner
// subscribes there. partition() is FNV-32a of the token modulo n, the same
// function as events.Partition, so the server and the stream agree on a
// tenant's partition with no client logic: `nats req ledger.v1.check.acme`
// reaches the owner of acme's partition.

// PartitionPrefix starts every partition-addressed subject.
const PartitionPrefix = SubjectPrefix + ".p"

// TenantSubject is the subject a client sends op to for tenant.
func TenantSubject(op, tenant string) string { return op + "." + tenant }

// PartitionSubject is the subject of op's endpoint for partition p: what
// the owner of p subscribes to, with a wildcard for the tenant.
func PartitionSubject(op string, p int) string {
	return PartitionPrefix + "." + strconv.Itoa(p) + strings.TrimPrefix(op, SubjectPrefix) + ".*"
}

// MappedSubject is the subject the server maps TenantSubject(op, tenant)
// to: what NATS checks a sender's publish permission against, since it
// applies subject mappings first. A tenant of "*" gives the wildcard of
// every tenant.
func MappedSubject(op, tenant string) string {
	p := "*"
	if tenant != "*" {
		p = strconv.Itoa(events.Partition(tenant))
	}
	return PartitionPrefix + "." + p + strings.TrimPrefix(op, SubjectPrefix) + "." + tenant
}

// TenantOfSubject returns the tenant a request's subject names: its last
// token.
func TenantOfSubject(subject string) string {
	return subject[strings.LastIndexByte(subject, '.')+1:]
}

// PartitionMappings returns the subject mappings every NATS server of the
// ledger's account needs, source to destination: one per number of tokens
// an operation has (check, quota.set), hashing the tenant, the last token.
func PartitionMappings() map[string]string {
	n := strconv.Itoa(events.Partitions)
	return map[string]string{
		SubjectPrefix + ".*.*":   PartitionPrefix + ".{{partition(" + n + ",2)}}.{{wildcard(1)}}.{{wildcard(2)}}",
		SubjectPrefix + ".*.*.*": PartitionPrefix + ".{{partition(" + n + ",3)}}.{{wildcard(1)}}.{{wildcard(2)}}.{{wildcard(3)}}",
	}
}

// Subjects of the cluster's own requests. They are outside ledger.v1's
// partition mapping: every member (ledger and projector) answers them.
const (
	// SubjectClusterStatus gets every member's MemberStatus: send a request
	// and gather the replies until a deadline.
	SubjectClusterStatus = "ledger.cluster.status"
)

// MemberStatusSubject is the subject only the member named name answers.
func MemberStatusSubject(name string) string { return SubjectClusterStatus + "." + name }
