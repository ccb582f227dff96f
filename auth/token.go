package auth

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nkeys"
)

// Tokens sign a user in to the ledger's web dashboard without the browser
// ever seeing the user's nkey seed: `ledger creds token --nkey FILE` signs
// a short statement with the seed (whose key, until when), and the
// dashboard checks the signature against the credentials file's users on
// every request, so a revoked user loses access at once.
//
// A token is base64url(JSON {"pub": public nkey, "exp": Unix seconds}) "."
// base64url(ed25519 signature by that key over TokenContext and the first
// part). The context string keeps a token's signature from being any other
// statement the key signs.

// TokenContext is prefixed to what a token's signature covers.
const TokenContext = "ledger-dashboard-token.v1:"

// MaxTokenTTL bounds a token's lifetime, at issue and when checked.
const MaxTokenTTL = 31 * 24 * time.Hour

// DefaultTokenTTL is the lifetime `ledger creds token` gives by default.
const DefaultTokenTTL = 12 * time.Hour

// Token errors. VerifyToken's errors wrap exactly one of them.
var (
	ErrTokenMalformed = errors.New("not a ledger token")
	ErrTokenSignature = errors.New("token signature does not verify")
	ErrTokenExpired   = errors.New("token expired")
	ErrTokenUnknown   = errors.New("token of a key that is not a user (unknown or revoked)")
	ErrTokenRole      = errors.New("token of a user whose role may not sign in here")
)

// tokenClaims is what a token says.
type tokenClaims struct {
	Pub string `json:"pub"`
	Exp int64  `json:"exp"`
}

// NewToken returns a token of id's key that expires ttl after now (at most
// MaxTokenTTL), and its expiry.
func NewToken(id *Identity, ttl time.Duration, now time.Time) (string, time.Time, error) {
	if ttl <= 0 || ttl > MaxTokenTTL {
		return "", time.Time{}, fmt.Errorf("token lifetime %s: give more than 0 and at most %s", ttl, MaxTokenTTL)
	}
	exp := now.Add(ttl).Truncate(time.Second)
	claims, err := json.Marshal(tokenClaims{Pub: id.PublicKey(), Exp: exp.Unix()})
	if err != nil {
		return "", time.Time{}, err
	}
	head := base64.RawURLEncoding.EncodeToString(claims)
	sig, err := id.kp.Sign([]byte(TokenContext + head))
	if err != nil {
		return "", time.Time{}, err
	}
	return head + "." + base64.RawURLEncoding.EncodeToString(sig), exp, nil
}

// VerifyToken checks a token at now against users and returns the user it
// signs in and when it expires. The signature must verify with the key the
// token names, the token must not have expired (nor expire more than
// MaxTokenTTL ahead), the key must be one of users, and that user's role
// one of roles.
func VerifyToken(token string, users []User, now time.Time, roles ...Role) (User, time.Time, error) {
	head, sigText, ok := strings.Cut(strings.TrimSpace(token), ".")
	if !ok || head == "" || sigText == "" || len(token) > 1024 {
		return User{}, time.Time{}, ErrTokenMalformed
	}
	raw, err1 := base64.RawURLEncoding.DecodeString(head)
	sig, err2 := base64.RawURLEncoding.DecodeString(sigText)
	if err1 != nil || err2 != nil {
		return User{}, time.Time{}, ErrTokenMalformed
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var c tokenClaims
	if err := dec.Decode(&c); err != nil || dec.More() || !nkeys.IsValidPublicUserKey(c.Pub) || c.Exp <= 0 {
		return User{}, time.Time{}, ErrTokenMalformed
	}
	kp, err := nkeys.FromPublicKey(c.Pub)
	if err != nil {
		return User{}, time.Time{}, ErrTokenMalformed
	}
	if err := kp.Verify([]byte(TokenContext+head), sig); err != nil {
		return User{}, time.Time{}, ErrTokenSignature
	}
	exp := time.Unix(c.Exp, 0).UTC()
	if !now.Before(exp) {
		return User{}, exp, fmt.Errorf("%w at %s", ErrTokenExpired, exp.Format(time.RFC3339))
	}
	if exp.Sub(now) > MaxTokenTTL+time.Minute {
		return User{}, exp, fmt.Errorf("%w: it expires more than %s ahead", ErrTokenMalformed, MaxTokenTTL)
	}
	i := slices.IndexFunc(users, func(u User) bool { return u.NKey == c.Pub })
	if i < 0 {
		return User{}, exp, ErrTokenUnknown
	}
	u := users[i]
	if !slices.Contains(roles, u.Role) {
		return u, exp, fmt.Errorf("%w: %s is a %s", ErrTokenRole, u.Name, u.Role)
	}
	return u, exp, nil
}
