package auth_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/ledgerworks/ledger/auth"
)

// TestServerConfigParses: the authorization block `ledger creds config`
// prints is read by nats-server into exactly each role's permissions.
func TestServerConfigParses(t *testing.T) {
	f := &auth.File{}
	for i, u := range []auth.User{
		{Name: "p", Role: auth.RoleProducer, Tenant: "acme"},
		{Name: "s", Role: auth.RoleService, Tenant: "acme"},
		{Name: "a1", Role: auth.RoleAdmin, Tenant: "acme"},
		{Name: "a", Role: auth.RoleAdmin},
		{Name: "au", Role: auth.RoleAuditor},
		{Name: "l", Role: auth.RoleLedger},
		{Name: "pr", Role: auth.RoleProjector},
	} {
		id, err := auth.NewIdentity()
		if err != nil {
			t.Fatal(err)
		}
		u.NKey = id.PublicKey()
		if err := f.Add(u); err != nil {
			t.Fatalf("user %d: %v", i, err)
		}
	}
	path := filepath.Join(t.TempDir(), "ledger-auth.conf")
	if err := os.WriteFile(path, []byte(auth.ServerConfig(f)), 0o644); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("nats-server cannot read the config:\n%s\n%v", auth.ServerConfig(f), err)
	}
	if len(opts.Nkeys) != len(f.Users) {
		t.Fatalf("%d nkey users, want %d", len(opts.Nkeys), len(f.Users))
	}
	for i, u := range f.Users {
		got, want := opts.Nkeys[i], auth.PermissionsOf(u)
		if got.Nkey != u.NKey {
			t.Fatalf("user %d: key %s, want %s", i, got.Nkey, u.NKey)
		}
		p := got.Permissions
		if !slices.Equal(p.Publish.Allow, want.Publish.Allow) || !slices.Equal(p.Publish.Deny, want.Publish.Deny) ||
			!slices.Equal(p.Subscribe.Allow, want.Subscribe.Allow) || !slices.Equal(p.Subscribe.Deny, want.Subscribe.Deny) ||
			(p.Response != nil) != want.Responses {
			t.Errorf("%s: the server read %+v %+v %+v, want %+v", u.Name, p.Publish, p.Subscribe, p.Response, want)
		}
	}
}
