package auth_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ledgerworks/ledger/auth"
)

// FuzzVerifyToken: a token is what a browser's cookie carries, so anything
// may arrive. No input panics the verifier, every refusal is one of its
// typed errors, and only the real user's untouched token is accepted.
func FuzzVerifyToken(f *testing.F) {
	id, err := auth.NewIdentity()
	if err != nil {
		f.Fatal(err)
	}
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	good, _, err := auth.NewToken(id, time.Hour, now)
	if err != nil {
		f.Fatal(err)
	}
	users := []auth.User{{Name: "ops", Role: auth.RoleAdmin, NKey: id.PublicKey()}}
	f.Add(good)
	f.Add(good[:len(good)-2])
	f.Add("")
	f.Add(".")
	f.Add("eyJwdWIiOiJVIiwiZXhwIjoxfQ.AAAA")
	f.Add(good + "." + good)
	f.Fuzz(func(t *testing.T, token string) {
		u, _, err := auth.VerifyToken(token, users, now, auth.RoleAdmin, auth.RoleAuditor)
		if err == nil {
			// Only white space around the real token may differ.
			if strings.TrimSpace(token) != good {
				t.Fatalf("accepted %q, not the user's token", token)
			}
			if u.Name != "ops" {
				t.Fatalf("accepted as %+v", u)
			}
			return
		}
		for _, typed := range []error{auth.ErrTokenMalformed, auth.ErrTokenSignature, auth.ErrTokenExpired, auth.ErrTokenUnknown, auth.ErrTokenRole} {
			if errors.Is(err, typed) {
				return
			}
		}
		t.Fatalf("untyped refusal %v", err)
	})
}
