package ledger

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ledgerworks/ledger/events"
)

// StreamOptions shape the ledger stream. The zero value is one replica, file
// storage and a 10-minute duplicate window.
type StreamOptions struct {
	Name string
	// Replicas of the stream: 1 when it is created unless set; an existing
	// stream is moved to it when set, and kept as it is when not.
	Replicas int
	// Duplicates is how long the stream remembers message IDs. It must
	// outlast the longest producer retry; each remembered ID costs about
	// 200 bytes of server memory, and IDs here are per batch, not per event.
	Duplicates time.Duration
}

func (o StreamOptions) withDefaults() StreamOptions {
	if o.Name == "" {
		o.Name = events.StreamName
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.Duplicates <= 0 {
		o.Duplicates = 10 * time.Minute
	}
	return o
}

// StreamConfig returns the configuration of the ledger stream: every ledger
// subject, file storage, no age or size limit, and delete and purge denied
// (they cannot be allowed again once set).
func StreamConfig(o StreamOptions) jetstream.StreamConfig {
	o = o.withDefaults()
	return jetstream.StreamConfig{
		Name:        o.Name,
		Description: "usage ledger events: immutable, never deleted",
		Subjects:    []string{events.SubjectPrefix + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Replicas:    o.Replicas,
		Duplicates:  o.Duplicates,
		DenyDelete:  true,
		DenyPurge:   true,
		MaxMsgSize:  events.MaxBatchBytes + 4096,
		Metadata:    map[string]string{"ledger_partitions": strconv.Itoa(events.Partitions), "ledger_layout": "ledger.ev.<partition>.<tenant>.<class>"},
	}
}

// EnsureStream creates the ledger stream, or checks that an existing one has
// the layout this code expects and gives it the replicas asked for.
func EnsureStream(ctx context.Context, js jetstream.JetStream, o StreamOptions) (jetstream.Stream, error) {
	cfg := StreamConfig(o)
	s, err := js.Stream(ctx, cfg.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = js.CreateStream(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("create stream %s: %w", cfg.Name, err)
		}
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up stream %s: %w", cfg.Name, err)
	}
	info := s.CachedInfo()
	if p := info.Config.Metadata["ledger_partitions"]; p != strconv.Itoa(events.Partitions) {
		return nil, fmt.Errorf("stream %s has %q partitions, this ledger needs %d", cfg.Name, p, events.Partitions)
	}
	if !info.Config.DenyDelete || !info.Config.DenyPurge {
		return nil, fmt.Errorf("stream %s allows delete or purge; the ledger refuses to use it", cfg.Name)
	}
	if o.Replicas > 0 && info.Config.Replicas != o.Replicas {
		// Asked for another replica count (R1 grown to R3 on a cluster):
		// JetStream moves the stream live.
		up := info.Config
		up.Replicas = cfg.Replicas
		if s, err = js.UpdateStream(ctx, up); err != nil {
			return nil, fmt.Errorf("stream %s: from %d to %d replicas: %w", cfg.Name, info.Config.Replicas, cfg.Replicas, err)
		}
	}
	return s, nil
}
