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
	conns map[string]map[uint64]struct{} // open connections by user key
	// tracked counts connections ever authenticated, to prune conns now
	// and then.
	tracked uint64
	srv     *server.Server
}

// NewUsers returns the users of list.
func NewUsers(list []auth.User) *Users {
	u := &Users{conns: map[string]map[uint64]struct{}{}}
	u.byKey = byKey(list)
	return u
}

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
	var closing []uint64
	for key, ids := range u.conns {
		if now, ok := next[key]; ok && now.Role == u.byKey[key].Role && now.Tenant == u.byKey[key].Tenant {
			continue
		}
		for id := range ids {
			closing = append(closing, id)
		}
		delete(u.conns, key)
	}
	u.byKey = next
	srv := u.srv
	u.mu.Unlock()
	for _, id := range closing {
		if srv != nil {
			_ = srv.DisconnectClientByID(id) // gone already, at worst
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
	if cur, ok := u.byKey[opts.Nkey]; !ok || cur != user {
		return false // revoked or changed while we verified
	}
	if u.conns[opts.Nkey] == nil {
		u.conns[opts.Nkey] = map[uint64]struct{}{}
	}
	u.conns[opts.Nkey][c.GetID()] = struct{}{}
	if u.tracked++; u.tracked%1024 == 0 && u.srv != nil {
		go u.prune(u.srv)
	}
	return true
}

// prune forgets connections the server has closed, every 1024 connections,
// so that the map holds about what is open.
func (u *Users) prune(srv *server.Server) {
	cz, err := srv.Connz(&server.ConnzOptions{Limit: 1 << 20})
	if err != nil {
		return
	}
	open := make(map[uint64]struct{}, len(cz.Conns))
	for _, ci := range cz.Conns {
		open[ci.Cid] = struct{}{}
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	for key, ids := range u.conns {
		for id := range ids {
			if _, ok := open[id]; !ok {
				delete(ids, id)
			}
		}
		if len(ids) == 0 {
			delete(u.conns, key)
		}
	}
}
