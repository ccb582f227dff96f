// Package events defines the ledger's stored format: the versioned event
// envelope, every event type and payload, their deterministic msgpack and JSON
// encodings, validation, and the error vocabulary shared by every wire
// contract of the ledger.
//
// Events are kept forever. Type names are explicit strings that are never
// renamed or reused; a changed payload is a new type version. Encodings are
// pinned by golden files in testdata/ that must never be regenerated.
//
// The package is pure: no NATS, no Pebble, no clock. Callers pass "now" where
// validation depends on it.
package events
