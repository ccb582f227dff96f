// Package auth decides who may use the ledger's NATS and for what: the
// credentials file that lists every user (name, role, tenant, nkey), the
// NATS permissions each role gets, the nats-server configuration those
// permissions make for an external cluster, and the connection options a
// process proves its identity with.
//
// The ledger never trusts a client's word about who it is: a user's role
// and tenant become subject permissions the NATS server enforces, so tenant
// A's credentials cannot publish to tenant B's subjects, read B's replies
// (each user receives only on its own inbox prefix) or touch the stream's
// JetStream API beyond what its role reads. docs/SECURITY.md has the
// threat model and the roles table.
package auth
