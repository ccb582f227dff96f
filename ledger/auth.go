package ledger

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ledgerworks/ledger/auth"
)

// selfUserName is the embedded ledger's own user, added to the users of
// the credentials file. Its key is made at start and never written down.
const selfUserName = "_ledger-self"

// credentialsFile is the credentials file the ledger follows: the embedded
// server's users, with the ledger's own identity on it, or, against an
// external cluster (whose servers carry the NATS users), only who may sign
// in to the dashboard.
type credentialsFile struct {
	path  string
	self  *auth.Identity // nil when Config.Credentials names the ledger's user
	last  []byte         // the file's content the server has now
	users []auth.User
}

// followCredentials reads the credentials file the ledger starts with
// (embedded: its server's users, with a key of its own made here). A file
// that is missing or malformed stops the start: a server told to
// authenticate must not run open or with half its users.
func followCredentials(path string, own auth.Credentials, embedded bool) (*credentialsFile, error) {
	a := &credentialsFile{path: path}
	if embedded && own.NKeyFile == "" && own.CredsFile == "" {
		id, err := auth.NewIdentity()
		if err != nil {
			return nil, err
		}
		a.self = id
	}
	if _, err := a.read(); err != nil {
		return nil, err
	}
	return a, nil
}

// read loads the file and reports whether it changed since the last read.
func (a *credentialsFile) read() (changed bool, err error) {
	data, err := os.ReadFile(a.path)
	if err != nil {
		return false, fmt.Errorf("credentials file: %w", err)
	}
	if a.users != nil && bytes.Equal(data, a.last) {
		return false, nil
	}
	f, err := auth.Parse(data)
	if err != nil {
		return false, fmt.Errorf("%s: %w", a.path, err)
	}
	users := append(make([]auth.User, 0, len(f.Users)+1), f.Users...)
	if a.self != nil {
		users = append(users, auth.User{Name: selfUserName, Role: auth.RoleLedger, NKey: a.self.PublicKey()})
	}
	a.last, a.users = data, users
	return true, nil
}

// connectOptions are the options of the ledger's own connection.
func connectOptions(cfg Config, a *credentialsFile) ([]nats.Option, error) {
	if a != nil && a.self != nil {
		return a.self.Options(), nil
	}
	return cfg.Credentials.Options()
}

// ReloadAuth reads the credentials file again and, if it changed, gives
// the embedded server its users: a revoked user is disconnected at once.
// A malformed file changes nothing and is reported. The ledger also calls
// it when it sees the file change, within a second.
func (l *Ledger) ReloadAuth() error {
	if l.auth == nil {
		return fmt.Errorf("authentication is off (no credentials file)")
	}
	l.authMu.Lock()
	defer l.authMu.Unlock()
	changed, err := l.auth.read()
	if err != nil || !changed {
		return err
	}
	if l.users != nil {
		l.users.Set(l.auth.users)
	}
	l.cfg.Logger.Info("credentials reloaded", "file", l.auth.path, "users", len(l.auth.users))
	return nil
}

// watchAuth reloads the credentials file when its size or time changes.
func (l *Ledger) watchAuth(ctx context.Context, every time.Duration) {
	var last os.FileInfo
	if fi, err := os.Stat(l.auth.path); err == nil {
		last = fi
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fi, err := os.Stat(l.auth.path)
		if err != nil || (last != nil && fi.ModTime().Equal(last.ModTime()) && fi.Size() == last.Size()) {
			continue
		}
		last = fi
		if err := l.ReloadAuth(); err != nil {
			l.cfg.Logger.Error("credentials file not reloaded: the server keeps its users", "err", err)
		}
	}
}
