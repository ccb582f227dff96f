package dashboard

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/ledgerworks/ledger/auth"
	"github.com/ledgerworks/ledger/events"
)

//go:embed assets
var assetsFS embed.FS

// Options configure the dashboard. The zero value is an open dashboard.
type Options struct {
	// Users returns the users who may sign in: the credentials file's, as
	// the ledger has last read it (it is called on every request, so a
	// revoked user is refused at once). Only admins and auditors are let
	// in. Nil leaves the dashboard open: no sign-in, everything shown.
	Users func() []auth.User
	// Now is the clock tokens are checked against (default time.Now).
	Now func() time.Time
	// MinInterval is the least time between two updates of one live view
	// (default 250 ms: at most four a second).
	MinInterval time.Duration
	// Refresh is how often a live view is made again even when nothing
	// changed (default 2 s): sliding windows empty and resets come without
	// any event.
	Refresh time.Duration
	// Heartbeat is how often an idle event stream gets a comment line
	// (default 15 s), so proxies keep it open.
	Heartbeat time.Duration
	// MaxStreams bounds the live views open at once (default 64); more are
	// answered 503.
	MaxStreams int
	// OpenNote is the page footer's note when the dashboard is open
	// (default: that it is, and why that is acceptable only on loopback).
	OpenNote string
	Logger   *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MinInterval <= 0 {
		o.MinInterval = 250 * time.Millisecond
	}
	if o.Refresh <= 0 {
		o.Refresh = 2 * time.Second
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = 15 * time.Second
	}
	if o.MaxStreams <= 0 {
		o.MaxStreams = 64
	}
	if o.OpenNote == "" {
		o.OpenNote = "Authentication is off (no --auth): whoever reaches this address sees every tenant; keep it on loopback or a private network."
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Page sizes.
const (
	defaultTenantPage = 50
	maxTenantPage     = 200
)

type handler struct {
	src     Source
	opts    Options
	mux     *http.ServeMux
	index   []byte
	streams chan struct{}
}

// New returns the dashboard's handler, to be mounted at "/" of a server.
func New(src Source, opts Options) http.Handler {
	h := &handler{src: src, opts: opts.withDefaults(), mux: http.NewServeMux()}
	h.streams = make(chan struct{}, h.opts.MaxStreams)
	var err error
	if h.index, err = assetsFS.ReadFile("assets/index.html"); err != nil {
		panic(err) // embedded at build time: cannot be missing
	}
	h.mux.HandleFunc("GET /{$}", h.page)
	h.mux.HandleFunc("GET /tenants/{tenant}", h.page)
	h.mux.Handle("GET /assets/", h.assets())
	h.mux.HandleFunc("GET /api/session", h.session)
	h.mux.HandleFunc("POST /login", h.login)
	h.mux.HandleFunc("POST /logout", h.logout)
	h.mux.HandleFunc("GET /api/tenants", h.signedIn(h.tenants))
	h.mux.HandleFunc("GET /api/tenants/{tenant}", h.signedIn(h.tenant))
	h.mux.HandleFunc("GET /api/partitions", h.signedIn(h.partitions))
	h.mux.HandleFunc("GET /api/events", h.signedIn(h.events))
	return h
}

// csp lets the page load its own script, style and data, and nothing else.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", csp)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "no-referrer")
	h.mux.ServeHTTP(w, r)
}

// page is the one HTML page; its script reads the location.
func (h *handler) page(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(h.index)
}

// assets serves the embedded script and style with a content hash for an
// ETag: a new binary's assets are never mistaken for the old ones.
func (h *handler) assets() http.Handler {
	sub, err := fs.Sub(assetsFS, "assets")
	if err != nil {
		panic(err)
	}
	etags := map[string]string{}
	_ = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, err := fs.ReadFile(sub, p); err == nil {
				sum := sha256.Sum256(b)
				etags["/assets/"+p] = `"` + hex.EncodeToString(sum[:8]) + `"`
			}
		}
		return nil
	})
	files := http.StripPrefix("/assets/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tag, ok := etags[path.Clean(r.URL.Path)]
		if !ok || strings.HasSuffix(r.URL.Path, ".html") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("ETag", tag)
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}

// writeJSON answers v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

type errorReply struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorReply{Error: msg})
}

// sourceError answers an error of the source.
func (h *handler) sourceError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
	case r.Context().Err() != nil:
		// The client went away: nobody to answer.
	default:
		h.opts.Logger.Warn("dashboard: the ledger could not answer", "path", r.URL.Path, "err", err)
		writeError(w, http.StatusServiceUnavailable, err.Error())
	}
}

// tenantQuery reads a page of the tenant list from the URL.
func tenantQuery(r *http.Request) (TenantQuery, error) {
	q := TenantQuery{Prefix: r.URL.Query().Get("prefix"), After: r.URL.Query().Get("after"), Limit: defaultTenantPage}
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return q, errors.New("limit: a positive number")
		}
		q.Limit = min(n, maxTenantPage)
	}
	if len(q.Prefix) > 256 || len(q.After) > 256 {
		return q, errors.New("prefix and after: at most 256 bytes")
	}
	return q, nil
}

// tenantList is a page of tenants as v may see it: a confined admin's
// own tenant only, and its own denials.
func (h *handler) tenantList(ctx context.Context, v viewer, q TenantQuery) (TenantList, error) {
	if v.tenant != "" {
		// The confined tenant is the first name with itself as prefix.
		if !strings.HasPrefix(v.tenant, q.Prefix) || (q.After != "" && q.After >= v.tenant) {
			return TenantList{Tenants: []TenantSummary{}, Denials: []Denial{}}, nil
		}
		q = TenantQuery{Prefix: v.tenant, Limit: 1}
	}
	list, err := h.src.Tenants(ctx, q)
	if err != nil {
		return list, err
	}
	if v.tenant != "" {
		list.More = false
		if len(list.Tenants) > 0 && list.Tenants[0].Name != v.tenant {
			list.Tenants = list.Tenants[:0]
		}
		own := list.Denials[:0:0]
		for _, d := range list.Denials {
			if d.Tenant == v.tenant {
				own = append(own, d)
			}
		}
		list.Denials = own
	}
	if list.Tenants == nil {
		list.Tenants = []TenantSummary{}
	}
	if list.Denials == nil {
		list.Denials = []Denial{}
	}
	return list, nil
}

func (h *handler) tenants(w http.ResponseWriter, r *http.Request, v viewer) {
	q, err := tenantQuery(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	list, err := h.tenantList(r.Context(), v, q)
	if err != nil {
		h.sourceError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

// checkTenant answers 400 or 403 and returns false when v may not see
// tenant.
func checkTenant(w http.ResponseWriter, v viewer, tenant string) bool {
	if !events.ValidTenant(tenant) {
		writeError(w, http.StatusBadRequest, strconv.Quote(tenant)+" cannot be a tenant")
		return false
	}
	if !v.maySee(tenant) {
		writeError(w, http.StatusForbidden, v.name+" is an admin of tenant "+v.tenant+" only")
		return false
	}
	return true
}

func (h *handler) tenant(w http.ResponseWriter, r *http.Request, v viewer) {
	tenant := r.PathValue("tenant")
	if !checkTenant(w, v, tenant) {
		return
	}
	view, err := h.src.Tenant(r.Context(), tenant)
	if err != nil {
		h.sourceError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, view)
}

func (h *handler) partitions(w http.ResponseWriter, r *http.Request, _ viewer) {
	pv, err := h.src.Partitions(r.Context())
	if err != nil {
		h.sourceError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, pv)
}

// events streams a live view as server-sent events: "tenant" (the
// tenant's view, with ?tenant=) or "tenants" (the list page of ?prefix,
// ?after, ?limit), and "partitions", each sent again when it changes, at
// most every MinInterval (a list page every second), and looked at again
// every Refresh; a comment line every Heartbeat. It ends when the client
// goes, or with a "signedout" event when the viewer's token no longer
// signs in.
func (h *handler) events(w http.ResponseWriter, r *http.Request, v viewer) {
	tenant := r.URL.Query().Get("tenant")
	if tenant != "" && !checkTenant(w, v, tenant) {
		return
	}
	q, err := tenantQuery(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	select {
	case h.streams <- struct{}{}:
		defer func() { <-h.streams }()
	default:
		writeError(w, http.StatusServiceUnavailable, "too many live views are open; try again later")
		return
	}
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // a stream outlives a server's write timeout
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	ctx := r.Context()
	s := &stream{w: w, rc: rc}
	s.write([]byte("retry: 2000\n\n"))

	minInterval := h.opts.MinInterval
	if tenant == "" {
		// A page of the list summarises up to a page of tenants: once a
		// second is live enough.
		minInterval = max(minInterval, time.Second)
	}
	heartbeat := time.NewTicker(h.opts.Heartbeat)
	defer heartbeat.Stop()
	refresh := time.NewTicker(h.opts.Refresh)
	defer refresh.Stop()
	var lastView, lastParts []byte
	var partsAt time.Time
	for s.err == nil {
		changed := h.src.Changed()
		if _, err := h.viewerOf(r); err != nil {
			s.event("signedout", errorReply{Error: err.Error()}, nil)
			return
		}
		var view any
		var err error
		if tenant != "" {
			view, err = h.src.Tenant(ctx, tenant)
		} else {
			view, err = h.tenantList(ctx, v, q)
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			s.event("error", errorReply{Error: err.Error()}, nil)
		} else if tenant != "" {
			lastView = s.event("tenant", view, lastView)
		} else {
			lastView = s.event("tenants", view, lastView)
		}
		if time.Since(partsAt) >= time.Second {
			if pv, err := h.src.Partitions(ctx); err == nil {
				pv.Time = time.Time{} // only a change is news
				lastParts = s.event("partitions", pv, lastParts)
				partsAt = time.Now()
			}
		}
		sent := time.Now()
		refreshed, ok := s.wait(ctx, changed, heartbeat.C, refresh.C)
		if !ok {
			return
		}
		if refreshed {
			partsAt = time.Time{}
		}
		if d := minInterval - time.Since(sent); d > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(d):
			}
		}
	}
}

// wait blocks until a change or a refresh (refreshed true), writing a
// heartbeat comment at each beat in between; ok is false when the stream
// has ended.
func (s *stream) wait(ctx context.Context, changed <-chan struct{}, beat, refresh <-chan time.Time) (refreshed, ok bool) {
	for {
		select {
		case <-ctx.Done():
			return false, false
		case <-beat:
			s.write([]byte(": heartbeat\n\n"))
			if s.err != nil {
				return false, false
			}
		case <-changed:
			return false, true
		case <-refresh:
			return true, true
		}
	}
}

// stream writes server-sent events; the first write error ends it.
type stream struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	err error
}

func (s *stream) write(b []byte) {
	if s.err != nil {
		return
	}
	if _, s.err = s.w.Write(b); s.err == nil {
		s.err = s.rc.Flush()
	}
}

// event sends v as event name unless its JSON is last, and returns the
// JSON sent (or last).
func (s *stream) event(name string, v any, last []byte) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		s.err = err
		return last
	}
	if last != nil && bytes.Equal(b, last) {
		return last
	}
	var msg bytes.Buffer
	msg.WriteString("event: ")
	msg.WriteString(name)
	msg.WriteString("\ndata: ")
	msg.Write(b) // JSON holds no raw newline
	msg.WriteString("\n\n")
	s.write(msg.Bytes())
	return b
}
