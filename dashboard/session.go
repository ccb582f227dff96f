package dashboard

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ledgerworks/ledger/auth"
)

// cookieName holds the viewer's token: HttpOnly, so the page's script
// never reads it, and SameSite=Strict, so no other site's page sends it.
const cookieName = "ledger_dashboard"

// signInRoles may sign in to the dashboard.
var signInRoles = []auth.Role{auth.RoleAdmin, auth.RoleAuditor}

// viewer is who is looking: a signed-in user, or anyone when the
// dashboard is open.
type viewer struct {
	open   bool
	name   string
	role   auth.Role
	tenant string // an admin's tenant: nothing else is shown
	exp    time.Time
}

func (v viewer) maySee(tenant string) bool { return v.tenant == "" || v.tenant == tenant }

var errSignIn = errors.New("sign in with an admin's or auditor's token (ledger creds token)")

// viewerOf is the request's viewer, from its cookie's token verified
// against the current users.
func (h *handler) viewerOf(r *http.Request) (viewer, error) {
	if h.opts.Users == nil {
		return viewer{open: true}, nil
	}
	c, err := r.Cookie(cookieName)
	if err != nil || c.Value == "" {
		return viewer{}, errSignIn
	}
	return h.verify(c.Value)
}

func (h *handler) verify(token string) (viewer, error) {
	u, exp, err := auth.VerifyToken(token, h.opts.Users(), h.opts.Now(), signInRoles...)
	if err != nil {
		return viewer{}, err
	}
	return viewer{name: u.Name, role: u.Role, tenant: u.Tenant, exp: exp}, nil
}

// signedIn runs f for a request whose viewer may see the dashboard, and
// answers 401 otherwise.
func (h *handler) signedIn(f func(http.ResponseWriter, *http.Request, viewer)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := h.viewerOf(r)
		if err != nil {
			writeError(w, http.StatusUnauthorized, err.Error())
			return
		}
		f(w, r, v)
	}
}

// sessionReply tells the page whether to ask for a token, and who is
// signed in.
type sessionReply struct {
	AuthRequired bool       `json:"auth_required"`
	SignedIn     bool       `json:"signed_in"`
	Name         string     `json:"name,omitempty"`
	Role         string     `json:"role,omitempty"`
	Tenant       string     `json:"tenant,omitempty"`
	Expires      *time.Time `json:"expires,omitempty"`
	Note         string     `json:"note,omitempty"`
	Error        string     `json:"error,omitempty"`
}

func (h *handler) sessionOf(v viewer, err error) sessionReply {
	if v.open {
		return sessionReply{SignedIn: true, Note: h.opts.OpenNote}
	}
	s := sessionReply{AuthRequired: true}
	if err != nil {
		if !errors.Is(err, errSignIn) {
			s.Error = err.Error()
		}
		return s
	}
	s.SignedIn, s.Name, s.Role, s.Tenant, s.Expires = true, v.name, string(v.role), v.tenant, &v.exp
	return s
}

func (h *handler) session(w http.ResponseWriter, r *http.Request) {
	v, err := h.viewerOf(r)
	writeJSON(w, http.StatusOK, h.sessionOf(v, err))
}

// sameOrigin refuses a sign-in posted by another site's page: a browser
// always says where a POST comes from.
func sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return r.Header.Get("Sec-Fetch-Site") == "" || r.Header.Get("Sec-Fetch-Site") == "same-origin"
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host == r.Host
}

// login takes a token ({"token": "..."} or a form's token field), and on
// success keeps it in the cookie until it expires.
func (h *handler) login(w http.ResponseWriter, r *http.Request) {
	if h.opts.Users == nil {
		writeJSON(w, http.StatusOK, h.sessionOf(viewer{open: true}, nil))
		return
	}
	if !sameOrigin(r) {
		writeError(w, http.StatusForbidden, "sign in from the dashboard's own page")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 8<<10))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	var token string
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		var in struct {
			Token string `json:"token"`
		}
		if err := json.Unmarshal(body, &in); err != nil {
			writeError(w, http.StatusBadRequest, "a JSON object {\"token\": ...}")
			return
		}
		token = in.Token
	} else {
		vals, err := url.ParseQuery(string(body))
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		token = vals.Get("token")
	}
	token = strings.TrimSpace(token)
	v, err := h.verify(token)
	if err != nil {
		h.opts.Logger.Info("dashboard: sign-in refused", "remote", r.RemoteAddr, "err", err)
		writeJSON(w, http.StatusUnauthorized, h.sessionOf(viewer{}, err))
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: token, Path: "/", Expires: v.exp, MaxAge: int(v.exp.Sub(h.opts.Now()).Seconds()),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
	h.opts.Logger.Info("dashboard: signed in", "user", v.name, "role", v.role, "tenant", v.tenant, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, h.sessionOf(v, nil))
}

func (h *handler) logout(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		writeError(w, http.StatusForbidden, "sign out from the dashboard's own page")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	writeJSON(w, http.StatusOK, sessionReply{AuthRequired: h.opts.Users != nil})
}
