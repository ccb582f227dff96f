package ledger

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/ledgerworks/ledger/api"
	"github.com/ledgerworks/ledger/auth"
)

// Durability says when the embedded server fsyncs the stream.
type Durability string

// Durability modes.
const (
	// SyncAlways fsyncs every write before acknowledging it: nothing
	// acknowledged is lost even if the machine loses power.
	SyncAlways Durability = "always"
	// SyncPeriodic lets JetStream fsync every two minutes: an acknowledged
	// write survives a process crash (it is in the OS page cache) but not a
	// power loss.
	SyncPeriodic Durability = "periodic"
)

// ServerOptions configure the embedded NATS server.
type ServerOptions struct {
	// Listen is the client address (default 127.0.0.1:4222; port -1 or 0
	// picks a free port).
	Listen string
	// StoreDir holds JetStream's files.
	StoreDir   string
	Durability Durability
	Logger     *slog.Logger
	// Users, when not nil, turns authentication on: only these users may
	// connect, each with its role's permissions (package auth), and
	// Users.Set changes them while the server runs. Nil leaves the server
	// open, which StartServer allows on a loopback address only.
	Users *Users
	// TLS, when it names a certificate, makes clients connect over TLS.
	TLS ServerTLS
}

// ServerTLS is the embedded server's certificate and, to ask clients for
// certificates of their own, the CA that signs them.
type ServerTLS struct {
	CertFile, KeyFile string
	// CAFile, when set, makes the server require a client certificate
	// signed by it, on top of the client's credentials.
	CAFile string
}

// ErrOpenListen refuses an unauthenticated server on a non-loopback
// address: anyone who reached it could append usage and change quotas.
var ErrOpenListen = errors.New("an open (no --auth) server listens on 127.0.0.1 only")

// StartServer starts an embedded NATS server with JetStream and waits until
// it accepts connections.
func StartServer(o ServerOptions) (*server.Server, error) {
	opts, err := serverOptions(o)
	if err != nil {
		return nil, err
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS server: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("embedded NATS server on %s did not start within 10s", o.Listen)
	}
	if err := AddPartitionMappings(s); err != nil {
		s.Shutdown()
		return nil, err
	}
	if o.Users != nil {
		o.Users.attach(s)
	}
	return s, nil
}

func serverOptions(o ServerOptions) (*server.Options, error) {
	if o.Listen == "" {
		o.Listen = "127.0.0.1:4222"
	}
	host, portStr, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen address %q: %w", o.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("listen port %q: %w", portStr, err)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if o.StoreDir == "" {
		return nil, fmt.Errorf("embedded server needs a store directory")
	}
	if o.Users == nil && !isLoopback(host) {
		return nil, fmt.Errorf("%w: %s needs --auth (docs/SECURITY.md)", ErrOpenListen, o.Listen)
	}
	opts := &server.Options{
		ServerName: "ledger",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   filepath.Clean(o.StoreDir),
		NoSigs:     true,
		NoLog:      true,
	}
	switch o.Durability {
	case SyncAlways, "":
		opts.SyncAlways = true
	case SyncPeriodic:
		opts.SyncInterval = 2 * time.Minute
	default:
		return nil, fmt.Errorf("durability %q: use %q or %q", o.Durability, SyncAlways, SyncPeriodic)
	}
	if o.Users != nil {
		// Every client signs the server's nonce with its nkey; Users checks.
		opts.CustomClientAuthentication = o.Users
		opts.AlwaysEnableNonce = true
	}
	if o.TLS.CertFile != "" || o.TLS.KeyFile != "" || o.TLS.CAFile != "" {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{
			CertFile: o.TLS.CertFile, KeyFile: o.TLS.KeyFile, CaFile: o.TLS.CAFile, Verify: o.TLS.CAFile != "",
		})
		if err != nil {
			return nil, fmt.Errorf("TLS: %w", err)
		}
		opts.TLSConfig, opts.TLSVerify, opts.TLSTimeout = tc, o.TLS.CAFile != "", 2
	}
	return opts, nil
}

// serverPermissions are u's role's permissions as the server takes them.
func serverPermissions(u auth.User) *server.Permissions {
	p := auth.PermissionsOf(u)
	perms := &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: p.Publish.Allow, Deny: p.Publish.Deny},
		Subscribe: &server.SubjectPermission{Allow: p.Subscribe.Allow, Deny: p.Subscribe.Deny},
	}
	if p.Responses {
		perms.Response = &server.ResponsePermission{MaxMsgs: server.DEFAULT_ALLOW_RESPONSE_MAX_MSGS, Expires: server.DEFAULT_ALLOW_RESPONSE_EXPIRATION}
	}
	return perms
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// AddPartitionMappings adds api.PartitionMappings to a server's global
// account, so that tenant-addressed requests reach their partition's owner.
func AddPartitionMappings(s *server.Server) error {
	acc := s.GlobalAccount()
	for src, dst := range api.PartitionMappings() {
		if err := acc.AddMapping(src, dst); err != nil {
			return fmt.Errorf("subject mapping %s -> %s: %w", src, dst, err)
		}
	}
	return nil
}
