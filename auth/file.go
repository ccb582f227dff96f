package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/ledgerworks/ledger/events"
)

// File is the credentials file: every user that may connect, by public
// nkey. It holds no secret: a user's seed is written once, to the file
// `ledger creds add --out` names, and only its public key is kept here.
type File struct {
	Users []User `json:"users"`
}

// User is one credential: a name for people, a role, the tenant the role
// is confined to, and the public nkey the user signs in with.
type User struct {
	Name   string    `json:"name"`
	Role   Role      `json:"role"`
	Tenant string    `json:"tenant,omitempty"`
	NKey   string    `json:"nkey"`
	Added  time.Time `json:"added,omitzero"`
}

// ErrInvalidFile is wrapped by every error about a credentials file's
// content.
var ErrInvalidFile = errors.New("invalid credentials file")

// FileError says which user and field of a credentials file is wrong.
type FileError struct {
	User   int    // index in users, -1 for the file as a whole
	Field  string // "name", "role", ...; "" for the whole entry
	Reason string
}

func (e *FileError) Error() string {
	if e.User < 0 {
		return "credentials file: " + e.Reason
	}
	if e.Field == "" {
		return fmt.Sprintf("credentials file: users[%d]: %s", e.User, e.Reason)
	}
	return fmt.Sprintf("credentials file: users[%d].%s: %s", e.User, e.Field, e.Reason)
}

func (e *FileError) Unwrap() error { return ErrInvalidFile }

// Parse reads a credentials file's content and checks every user: a valid,
// unique name; a known role; a tenant exactly where the role needs one; a
// valid, unique user nkey.
func Parse(data []byte) (*File, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f File
	if err := dec.Decode(&f); err != nil {
		return nil, &FileError{User: -1, Reason: "not a JSON object of users: " + err.Error()}
	}
	if dec.More() {
		return nil, &FileError{User: -1, Reason: "more than one JSON value"}
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return &f, nil
}

// Validate checks every user, as Parse does.
func (f *File) Validate() error {
	names := map[string]bool{}
	keys := map[string]bool{}
	for i, u := range f.Users {
		if err := u.validate(); err != nil {
			err.User = i
			return err
		}
		if names[u.Name] {
			return &FileError{User: i, Field: "name", Reason: fmt.Sprintf("%q is used twice", u.Name)}
		}
		if keys[u.NKey] {
			return &FileError{User: i, Field: "nkey", Reason: "the key of another user"}
		}
		names[u.Name], keys[u.NKey] = true, true
	}
	return nil
}

const maxNameLen = 64

func (u User) validate() *FileError {
	if !validName(u.Name) {
		return &FileError{Field: "name", Reason: fmt.Sprintf("%q: use 1-%d of [A-Za-z0-9_-]", u.Name, maxNameLen)}
	}
	if !slices.Contains(Roles, u.Role) {
		return &FileError{Field: "role", Reason: fmt.Sprintf("%q is not a role: use one of %v", u.Role, Roles)}
	}
	switch {
	case u.Role.NeedsTenant() && u.Tenant == "":
		return &FileError{Field: "tenant", Reason: fmt.Sprintf("a %s acts for one tenant: name it", u.Role)}
	case !u.Role.TakesTenant() && u.Tenant != "":
		return &FileError{Field: "tenant", Reason: fmt.Sprintf("a %s is not confined to a tenant", u.Role)}
	case u.Tenant != "" && !events.ValidTenant(u.Tenant):
		return &FileError{Field: "tenant", Reason: fmt.Sprintf("%q cannot be a tenant", u.Tenant)}
	}
	if !nkeys.IsValidPublicUserKey(u.NKey) {
		return &FileError{Field: "nkey", Reason: "not a public user nkey (U...)"}
	}
	return nil
}

func validName(s string) bool {
	if len(s) == 0 || len(s) > maxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Load reads and parses the credentials file at path. A missing file is
// an error: a server asked to authenticate must not start open.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// Save writes f to path atomically (a temporary file renamed over it), so
// a server reloading it never reads half a file.
func (f *File) Save(path string) error {
	if err := f.Validate(); err != nil {
		return err
	}
	if f.Users == nil {
		f.Users = []User{}
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// ErrUserExists and ErrNoSuchUser are the errors of Add and Revoke.
var (
	ErrUserExists = errors.New("a user of that name exists")
	ErrNoSuchUser = errors.New("no user of that name")
)

// Add adds u, which must be valid and new.
func (f *File) Add(u User) error {
	if f.Lookup(u.Name) != nil {
		return fmt.Errorf("%w: %s", ErrUserExists, u.Name)
	}
	f.Users = append(f.Users, u)
	if err := f.Validate(); err != nil {
		f.Users = f.Users[:len(f.Users)-1]
		return err
	}
	return nil
}

// Revoke removes the user named name.
func (f *File) Revoke(name string) error {
	i := slices.IndexFunc(f.Users, func(u User) bool { return u.Name == name })
	if i < 0 {
		return fmt.Errorf("%w: %s", ErrNoSuchUser, name)
	}
	f.Users = slices.Delete(f.Users, i, i+1)
	return nil
}

// Lookup returns the user named name, or nil.
func (f *File) Lookup(name string) *User {
	for i := range f.Users {
		if f.Users[i].Name == name {
			return &f.Users[i]
		}
	}
	return nil
}
