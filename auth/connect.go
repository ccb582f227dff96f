package auth

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// Credentials say how a process signs in to the ledger's NATS: with a
// user's nkey seed file (what `ledger creds add --out` writes) or a JWT
// creds file (an operator-mode cluster made with nsc), and over TLS when
// a CA or client certificate is given. The zero value connects
// anonymously, over plain TCP unless the URL says tls://.
type Credentials struct {
	NKeyFile  string
	CredsFile string
	// InboxPrefix is where replies to this process arrive. Default: the
	// private prefix of the user's key (InboxPrefix), the only one its
	// permissions let it receive on.
	InboxPrefix string
	// CAFile verifies the server's certificate; CertFile and KeyFile are
	// this process's client certificate, for a server that asks for one.
	CAFile, CertFile, KeyFile string
}

// Options returns the nats.Connect options of c.
func (c Credentials) Options() ([]nats.Option, error) {
	var opts []nats.Option
	prefix := c.InboxPrefix
	switch {
	case c.NKeyFile != "" && c.CredsFile != "":
		return nil, errors.New("give an nkey seed file or a creds file, not both")
	case c.NKeyFile != "":
		id, err := LoadIdentity(c.NKeyFile)
		if err != nil {
			return nil, err
		}
		opts = append(opts, id.signIn())
		if prefix == "" {
			prefix = InboxPrefix(id.PublicKey())
		}
	case c.CredsFile != "":
		id, err := LoadIdentity(c.CredsFile) // a creds file holds the user's seed too
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.UserCredentials(c.CredsFile))
		if prefix == "" {
			prefix = InboxPrefix(id.PublicKey())
		}
	}
	if prefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(prefix))
	}
	if c.CAFile != "" {
		opts = append(opts, nats.RootCAs(c.CAFile))
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return nil, errors.New("a client certificate needs both its certificate and its key file")
	}
	if c.CertFile != "" {
		opts = append(opts, nats.ClientCert(c.CertFile, c.KeyFile))
	}
	if c.CAFile != "" || c.CertFile != "" {
		opts = append(opts, nats.Secure(&tls.Config{MinVersion: tls.VersionTLS12}))
	}
	return opts, nil
}

// Connect connects to url with c and the extra options.
func (c Credentials) Connect(url string, extra ...nats.Option) (*nats.Conn, error) {
	opts, err := c.Options()
	if err != nil {
		return nil, err
	}
	return nats.Connect(url, append(opts, extra...)...)
}

// Identity is a user's key pair in memory: a process's own identity.
type Identity struct {
	kp  nkeys.KeyPair
	pub string
}

// NewIdentity makes a new user key pair. The embedded ledger signs in to
// its own server with one that is never written anywhere.
func NewIdentity() (*Identity, error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, err
	}
	return identityOf(kp)
}

// LoadIdentity reads a user's seed file.
func LoadIdentity(path string) (*Identity, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	kp, err := nkeys.ParseDecoratedNKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: not an nkey seed file: %w", path, err)
	}
	return identityOf(kp)
}

func identityOf(kp nkeys.KeyPair) (*Identity, error) {
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, err
	}
	if !nkeys.IsValidPublicUserKey(pub) {
		return nil, errors.New("not a user key (its seed starts SU)")
	}
	return &Identity{kp: kp, pub: pub}, nil
}

// PublicKey is the identity's public nkey, what the credentials file and
// the server know it by.
func (id *Identity) PublicKey() string { return id.pub }

// Options signs in as id and receives on its private inbox prefix.
func (id *Identity) Options() []nats.Option {
	return []nats.Option{id.signIn(), nats.CustomInboxPrefix(InboxPrefix(id.pub))}
}

func (id *Identity) signIn() nats.Option { return nats.Nkey(id.pub, id.kp.Sign) }

// WriteSeed writes id's seed to path, readable by its owner only, after
// comment lines saying whose it is and how to use it with the NATS CLI.
// It refuses to overwrite a file.
func (id *Identity) WriteSeed(path string, u User) error {
	seed, err := id.kp.Seed()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "# ledger user %s\n# nats --nkey %s --inbox-prefix %s ...\n%s\n", describe(u), path, InboxPrefix(id.pub), seed)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
