package auth_test

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ledgerworks/ledger/auth"
)

func newIdentity(t *testing.T) *auth.Identity {
	t.Helper()
	id, err := auth.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestTokenVerify: a token signs in the user whose key made it, until it
// expires, while the user is in the file with a role the caller accepts;
// anything else is refused with the error that says why.
func TestTokenVerify(t *testing.T) {
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	admin, auditor, svc, stranger := newIdentity(t), newIdentity(t), newIdentity(t), newIdentity(t)
	users := []auth.User{
		{Name: "acme-admin", Role: auth.RoleAdmin, Tenant: "acme", NKey: admin.PublicKey()},
		{Name: "auditor", Role: auth.RoleAuditor, NKey: auditor.PublicKey()},
		{Name: "acme-svc", Role: auth.RoleService, Tenant: "acme", NKey: svc.PublicKey()},
	}
	roles := []auth.Role{auth.RoleAdmin, auth.RoleAuditor}
	token := func(id *auth.Identity, ttl time.Duration) string {
		t.Helper()
		tok, exp, err := auth.NewToken(id, ttl, now)
		if err != nil {
			t.Fatal(err)
		}
		if !exp.Equal(now.Add(ttl)) {
			t.Fatalf("expiry %s, want %s", exp, now.Add(ttl))
		}
		return tok
	}
	good := token(admin, time.Hour)

	u, exp, err := auth.VerifyToken(good, users, now, roles...)
	if err != nil || u.Name != "acme-admin" || u.Tenant != "acme" || !exp.Equal(now.Add(time.Hour)) {
		t.Fatalf("valid admin token: %+v %s %v", u, exp, err)
	}
	if u, _, err := auth.VerifyToken(token(auditor, 12*time.Hour), users, now.Add(11*time.Hour), roles...); err != nil || u.Name != "auditor" {
		t.Fatalf("valid auditor token: %+v %v", u, err)
	}

	head, sig, _ := strings.Cut(good, ".")
	claims, _ := base64.RawURLEncoding.DecodeString(head)
	longer := base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(claims), `"exp":`, `"exp":9`, 1)))
	otherSig := strings.Split(token(auditor, time.Hour), ".")[1]
	for _, c := range []struct {
		name  string
		token string
		at    time.Time
		users []auth.User
		want  error
	}{
		{"expired", good, now.Add(time.Hour), users, auth.ErrTokenExpired},
		{"long expired", good, now.Add(48 * time.Hour), users, auth.ErrTokenExpired},
		{"tampered expiry", longer + "." + sig, now, users, auth.ErrTokenSignature},
		{"another key's signature", head + "." + otherSig, now, users, auth.ErrTokenSignature},
		{"flipped signature byte", head + "." + flip(sig), now, users, auth.ErrTokenSignature},
		{"unknown key", token(stranger, time.Hour), now, users, auth.ErrTokenUnknown},
		{"revoked user", good, now, users[1:], auth.ErrTokenUnknown},
		{"wrong role", token(svc, time.Hour), now, users, auth.ErrTokenRole},
		{"empty", "", now, users, auth.ErrTokenMalformed},
		{"no dot", head, now, users, auth.ErrTokenMalformed},
		{"not base64", "!!.!!", now, users, auth.ErrTokenMalformed},
		{"not json", base64.RawURLEncoding.EncodeToString([]byte("hello")) + "." + sig, now, users, auth.ErrTokenMalformed},
		{"a seed is no token", "SU" + strings.Repeat("A", 56), now, users, auth.ErrTokenMalformed},
	} {
		_, _, err := auth.VerifyToken(c.token, c.users, c.at, roles...)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func flip(s string) string {
	b, _ := base64.RawURLEncoding.DecodeString(s)
	b[len(b)/2] ^= 1
	return base64.RawURLEncoding.EncodeToString(b)
}

// TestTokenLifetime: a token lives more than nothing and at most
// MaxTokenTTL.
func TestTokenLifetime(t *testing.T) {
	id := newIdentity(t)
	now := time.Now()
	for _, ttl := range []time.Duration{0, -time.Second, auth.MaxTokenTTL + time.Second} {
		if _, _, err := auth.NewToken(id, ttl, now); err == nil {
			t.Errorf("NewToken with ttl %s: no error", ttl)
		}
	}
	if _, _, err := auth.NewToken(id, auth.MaxTokenTTL, now); err != nil {
		t.Errorf("NewToken with the longest ttl: %v", err)
	}
}
