// Package replay reads the ledger stream as an auditor does: it rebuilds
// projections and digests them, bills a period, audits a live projection,
// answers what a check would have said at any point of the history, and
// replays a period against proposed quotas.
//
// It needs read access to the stream only (see docs/REPLAY.md for the exact
// NATS permissions). Everything here reads stream data and stream metadata;
// the wall clock enters only in progress reporting, never in a result.
//
// The parts:
//
//	source.go      Source: the stream (batched direct gets) or messages in memory
//	scan.go        Scanner: the projector's acceptance rules (subjects and
//	               placement, decoding, validation, first occurrence of
//	               (tenant, id) wins)
//	               and the chained content hash of what was read
//	rebuild.go     Rebuild/Fold: fold into Pebble with projections.Projector.Apply
//	checkpoint.go  Pebble checkpoints with their applied sequence and digest
//	digest.go      Digest: a state digest of a projection at its applied sequence
//	report.go      Report: billing totals of a period, grouped, CSV or JSON
//	audit.go       Audit: recompute, compare with a live projection, list differences
//	at.go          At: usage and check answers at a sequence or a time
//	whatif.go      WhatIf: a period replayed against proposed quotas
//	progress.go    Progress: rate, position and ETA of long replays
package replay
