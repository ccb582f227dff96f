package ledger

import (
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/ledgerworks/ledger/api"
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
}

// StartServer starts an embedded NATS server with JetStream and waits until
// it accepts connections.
func StartServer(o ServerOptions) (*server.Server, error) {
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
	return s, nil
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
