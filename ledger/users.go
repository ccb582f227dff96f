package ledger

import (
	"encoding/base64"
	"sync"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/ledgerworks/ledger/auth"
)

// Users is who may connect to the embedded server, and with which
// permissions: the server asks it at every connection (it is the server's
// custom authentication), and Set changes it while the server runs.
//
// Why not the server's own nkey users and a config reload: nats-server
// re-authenticates every open connection on a reload, writing each
// client's account while that client's read loop reads it for subject
// mapping (a data race in nats-server 2.15, seen by -race whenever a
// client publishes during the reload). Set instead leaves open
// connections alone, except those of users it removes or changes, which
// it closes: they are refused when they connect again, or get their new
// permissions.
type Users struct {
	mu    sync.Mutex
	byKey map[string]auth.User
	srv   *server.Server
}

// NewUsers returns the users of list.
func NewUsers(list []auth.User) *Users { return &Users{byKey: byKey(list)} }

func byKey(list []auth.User) map[string]auth.User {
	m := make(map[string]auth.User, len(list))
	for _, u := range list {
		m[u.NKey] = u
	}
	return m
}

// attach gives Set the server whose connections it closes.
func (u *Users) attach(srv *server.Server) {
	u.mu.Lock()
	u.srv = srv
	u.mu.Unlock()
}

// Set replaces the users. The open connections of a user no longer
// listed, or listed with another role or tenant, are closed.
func (u *Users) Set(list []auth.User) {
	next := byKey(list)
	u.mu.Lock()
	prev, srv := u.byKey, u.srv
	u.byKey = next
	u.mu.Unlock()
	if srv == nil {
		return
	}
	// The server knows each connection's key (its authorized user).
	cz, err := srv.Connz(&server.ConnzOptions{Username: true, Limit: 1 << 20})
	if err != nil {
		return
	}
	for _, c := range cz.Conns {
		was, known := prev[c.AuthorizedUser]
		now, listed := next[c.AuthorizedUser]
		if known && (!listed || now.Role != was.Role || now.Tenant != was.Tenant) {
			_ = srv.DisconnectClientByID(c.Cid) // gone already, at worst
		}
	}
}

// Check authenticates a connection: its nkey must be a listed user's, and
// its signature of the server's nonce must verify with it. The connection
// then gets the user's role's permissions.
func (u *Users) Check(c server.ClientAuthentication) bool {
	opts := c.GetOpts()
	if opts == nil || opts.Nkey == "" || opts.Sig == "" {
		return false
	}
	u.mu.Lock()
	user, ok := u.byKey[opts.Nkey]
	u.mu.Unlock()
	if !ok {
		return false
	}
	sig, err := base64.RawURLEncoding.DecodeString(opts.Sig)
	if err != nil {
		if sig, err = base64.StdEncoding.DecodeString(opts.Sig); err != nil {
			return false
		}
	}
	pub, err := nkeys.FromPublicKey(opts.Nkey)
	if err != nil || pub.Verify(c.GetNonce(), sig) != nil {
		return false
	}
	c.RegisterUser(&server.User{Username: user.Name, Permissions: serverPermissions(user)})
	u.mu.Lock()
	defer u.mu.Unlock()
	cur, ok := u.byKey[opts.Nkey]
	return ok && cur == user // not revoked or changed while we verified
}
