// Package api is the wire contract of the ledger's request/reply service: the
// subjects, the request and reply messages and their encodings. Both the
// service (package ledger) and the Go client (package client) use it; it
// imports nothing but events and msgpack, so a client never pulls in the
// server, Pebble or the projector.
//
// Every message travels as JSON (a body starting with '{') or as msgpack
// (anything else); a reply uses the encoding of its request. Field names are
// the JSON names in both encodings. docs/PROTOCOL.md documents each one.
package api
