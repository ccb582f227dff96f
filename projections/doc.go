// Package projections folds ledger events into windowed counters and answers
// quota queries from them.
//
// The fold is pure and deterministic: Evolve reads only the event and the
// tenant's state, never the wall clock, and ignores event types it does not
// know. Window arithmetic lives in window.go, the fold in fold.go, the
// queries in query.go; none of them import NATS, Pebble or os. Store (Pebble)
// and Projector (JetStream) are the adapters at the edge: the counter deltas
// of a batch of stream messages are aggregated in memory and written in one
// Pebble batch together with the last applied stream sequence, so every
// message is applied exactly once however the process stops.
package projections
