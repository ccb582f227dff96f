package auth

import (
	"slices"

	"github.com/ledgerworks/ledger/api"
	"github.com/ledgerworks/ledger/events"
)

// Role is what a user may do.
type Role string

// Roles. docs/SECURITY.md has the table of what each may publish and
// receive.
const (
	// RoleProducer records one tenant's usage: it publishes to the
	// tenant's usage subject of the stream (and usage.record) and nothing
	// else.
	RoleProducer Role = "producer"
	// RoleService is one tenant's application: checks, reservations,
	// workflows, retry signals and the tenant's reads.
	RoleService Role = "service"
	// RoleAdmin changes quotas, plans and counters, and reads: of one
	// tenant, or of all when it names none.
	RoleAdmin Role = "admin"
	// RoleAuditor reads the stream (replay, report, audit, at, whatif) and
	// every tenant's reads; it appends nothing and deletes nothing.
	RoleAuditor Role = "auditor"
	// RoleLedger is a ledger process (decider, owner of partitions): it
	// appends to the stream, holds leases and answers requests.
	RoleLedger Role = "ledger"
	// RoleProjector is a standalone projector: it reads the stream and
	// answers status.
	RoleProjector Role = "projector"
)

// Roles lists every role.
var Roles = []Role{RoleProducer, RoleService, RoleAdmin, RoleAuditor, RoleLedger, RoleProjector}

// NeedsTenant reports whether the role acts for exactly one tenant.
func (r Role) NeedsTenant() bool { return r == RoleProducer || r == RoleService }

// TakesTenant reports whether the role may be confined to a tenant.
func (r Role) TakesTenant() bool { return r.NeedsTenant() || r == RoleAdmin }

// Permissions are a user's NATS permissions. Anything not allowed is
// refused by the server.
type Permissions struct {
	Publish   Rules
	Subscribe Rules
	// Responses lets the user reply to the requests it receives, once
	// each (allow_responses): how the ledger answers into the private
	// inboxes it could not otherwise publish to.
	Responses bool
}

// Rules allow subjects and deny some of them.
type Rules struct {
	Allow []string
	Deny  []string
}

// InboxPrefix is the prefix of a user's private inboxes, where its replies
// arrive: no other user may subscribe there. A client must use it
// (nats.CustomInboxPrefix, `nats --inbox-prefix`).
func InboxPrefix(nkey string) string { return "_INBOX_" + nkey }

// The stream's JetStream API subjects the roles use.
var (
	// streamReads read the ledger stream and nothing else: direct gets
	// (replay reads with them) and the stream's info. Not the consumer
	// API: creating a push consumer names any deliver subject, a side
	// door to publish where the user may not.
	streamReads = []string{
		"$JS.API.INFO",
		"$JS.API.STREAM.INFO." + events.StreamName,
		"$JS.API.DIRECT.GET." + events.StreamName,
		"$JS.API.DIRECT.GET." + events.StreamName + ".>",
	}
	// destructive JetStream API no role may use, not even the ledger:
	// the stream and the lease bucket are never deleted or purged.
	destructive = []string{
		"$JS.API.STREAM.DELETE.>",
		"$JS.API.STREAM.PURGE.>",
		"$JS.API.STREAM.MSG.DELETE.>",
		"$JS.API.ACCOUNT.PURGE.>",
		"$JS.API.SERVER.>",
	}
	// clusterReads are the cluster status and `nats micro` discovery.
	clusterReads = []string{
		api.SubjectClusterStatus,
		api.SubjectClusterStatus + ".*",
		"$SRV.*",
		"$SRV.*." + api.ServiceName,
		"$SRV.*." + api.ServiceName + ".*",
	}
)

// operations returns the request subjects of the given access classes for
// tenant ("*" for all tenants), sorted: the mapped subjects, which are what
// the server checks a publish against.
func operations(tenant string, classes ...api.Access) []string {
	var subs []string
	for op, class := range api.Operations {
		if slices.Contains(classes, class) {
			subs = append(subs, api.MappedSubject(op, tenant))
		}
	}
	slices.Sort(subs)
	return subs
}

// PermissionsOf returns the NATS permissions of u.
func PermissionsOf(u User) Permissions {
	inbox := []string{InboxPrefix(u.NKey) + ".>"}
	tenant := u.Tenant
	if tenant == "" {
		tenant = "*"
	}
	var p Permissions
	switch u.Role {
	case RoleProducer:
		p.Publish.Allow = append([]string{events.Subject(tenant, events.ClassUsage)}, operations(tenant, api.AccessUsage)...)
		p.Subscribe.Allow = inbox
	case RoleService:
		p.Publish.Allow = operations(tenant, api.AccessRead, api.AccessDecide)
		p.Subscribe.Allow = inbox
	case RoleAdmin:
		p.Publish.Allow = append(operations(tenant, api.AccessRead, api.AccessAdmin), clusterReads...)
		p.Subscribe.Allow = inbox
	case RoleAuditor:
		p.Publish.Allow = append(append(operations("*", api.AccessRead), streamReads...), clusterReads...)
		p.Subscribe.Allow = inbox
	case RoleLedger:
		// Anything but the destructive JetStream API: the ledger answers
		// into every user's inbox (allow_responses would allow one answer
		// per request and connection, and each of a ledger's partitions
		// answers `nats micro` discovery), appends to the stream and
		// holds leases.
		p.Publish.Allow = []string{">"}
		p.Publish.Deny = destructive
		p.Subscribe.Allow = append([]string{"ledger.>", "$SRV.>"}, inbox...)
	case RoleProjector:
		p.Publish.Allow = append([]string{"$JS.API.CONSUMER.>", "$JS.API.STREAM.MSG.GET." + events.StreamName, "$JS.FC.>"}, streamReads...)
		p.Publish.Deny = destructive
		p.Subscribe.Allow = append([]string{api.SubjectClusterStatus, api.SubjectClusterStatus + ".*"}, inbox...)
		p.Responses = true
	}
	return p
}
