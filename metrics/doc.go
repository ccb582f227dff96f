// Package metrics is the ledger's Prometheus metrics, on a registry of their own: request outcomes and latencies counted where requests are handled, and the projection, its Pebble store, the stream, partition ownership and the NATS connection read at each scrape.
package metrics
