// Package dashboard is the ledger's live web dashboard: the tenants, each
// tenant's quotas (used / limit per split, warnings, windows, resets), open
// reservations, active workflows, retry signals in force and last denials,
// and every partition's owner, applied sequence and lag. Views update live
// over server-sent events as the projection advances.
//
// New returns the http.Handler; a Source (the ledger implements one in
// ledger/dashboard.go) provides the data, so this package knows nothing of
// NATS or Pebble. The page is plain HTML, CSS and JavaScript embedded in
// the binary (assets/): it loads nothing from elsewhere, and its Content
// Security Policy forbids it to.
//
// URLs: / (tenants and partitions), /tenants/<tenant> (one tenant: the
// same page, which reads its location, so it can be bookmarked and
// shared), and the JSON the page reads: /api/session, /api/tenants,
// /api/tenants/<tenant>, /api/partitions and /api/events (text/event-stream).
//
// With Options.Users set (a ledger with a credentials file) the dashboard
// asks for a token (auth.NewToken, `ledger creds token`) of an admin or an
// auditor, keeps it in an HttpOnly, SameSite=Strict cookie and verifies it
// against the current users on every request and every live update; an
// admin confined to a tenant sees that tenant only. docs/OPERATIONS.md
// describes the dashboard for operators.
package dashboard
