package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
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
// subject, file storage, no age or size limit, delete and purge denied
// (they cannot be allowed again once set), and direct gets allowed: readers
// outside the ledger (replay, audits) read with them and need no consumer.
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
		AllowDirect: true,
		MaxMsgSize:  events.MaxBatchBytes + 4096,
		Metadata:    map[string]string{"ledger_partitions": strconv.Itoa(events.Partitions), "ledger_layout": "ledger.ev.<partition>.<tenant>.<class>"},
	}
}

// EnsureStream creates the ledger stream, or checks that an existing one has
// the layout this code expects and gives it the replicas asked for and
// direct gets. The stream it returns reads from the leader (ReadFromLeader).
func EnsureStream(ctx context.Context, js jetstream.JetStream, o StreamOptions) (jetstream.Stream, error) {
	s, err := ensureStream(ctx, js, o)
	if err != nil {
		return nil, err
	}
	return ReadFromLeader(js, s), nil
}

// ReadFromLeader returns s (a handle of js) reading a subject's last message
// and a message by sequence from the stream leader. Every handle the ledger
// reads with must be one: with direct gets allowed, the client library
// answers GetLastMsgForSubject and GetMsg with direct gets, which any
// replica nearly caught up may answer (on a cluster, most often the one on
// the server the client is connected to), without appends the stream has
// already acknowledged. The ledger's own reads (the decider's fence, the
// catch-up before owning a partition, the wait for a write to be folded,
// how far a projection is behind) must see every acknowledged append, so
// they ask the leader ($JS.API.STREAM.MSG.GET), as before direct gets.
func ReadFromLeader(js jetstream.JetStream, s jetstream.Stream) jetstream.Stream {
	if l, ok := s.(leaderReads); ok {
		return l
	}
	return leaderReads{Stream: s, js: js}
}

func ensureStream(ctx context.Context, js jetstream.JetStream, o StreamOptions) (jetstream.Stream, error) {
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
	up := info.Config
	var changes []string
	if o.Replicas > 0 && info.Config.Replicas != o.Replicas {
		// Asked for another replica count (R1 grown to R3 on a cluster):
		// JetStream moves the stream live.
		up.Replicas = cfg.Replicas
		changes = append(changes, fmt.Sprintf("from %d to %d replicas", info.Config.Replicas, cfg.Replicas))
	}
	if !info.Config.AllowDirect {
		// A stream made before readers used direct gets.
		up.AllowDirect = true
		changes = append(changes, "allow direct gets")
	}
	if len(changes) > 0 {
		if s, err = js.UpdateStream(ctx, up); err != nil {
			return nil, fmt.Errorf("stream %s: %s: %w", cfg.Name, strings.Join(changes, ", "), err)
		}
	}
	return s, nil
}

// leaderReads is a stream reading from its leader (ReadFromLeader).
type leaderReads struct {
	jetstream.Stream
	js jetstream.JetStream
}

// GetMsg gets the message at seq from the stream leader. With options (a
// subject filter) it is the client library's, a direct get.
func (s leaderReads) GetMsg(ctx context.Context, seq uint64, opts ...jetstream.GetMsgOpt) (*jetstream.RawStreamMsg, error) {
	if len(opts) > 0 {
		return s.Stream.GetMsg(ctx, seq, opts...)
	}
	return s.leaderGet(ctx, msgGetRequest{Seq: seq})
}

// GetLastMsgForSubject gets the last message on subject from the stream
// leader.
func (s leaderReads) GetLastMsgForSubject(ctx context.Context, subject string) (*jetstream.RawStreamMsg, error) {
	return s.leaderGet(ctx, msgGetRequest{LastFor: subject})
}

type msgGetRequest struct {
	Seq     uint64 `json:"seq,omitempty"`
	LastFor string `json:"last_by_subj,omitempty"`
}

func (s leaderReads) leaderGet(ctx context.Context, req msgGetRequest) (*jetstream.RawStreamMsg, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	o := s.js.Options()
	if _, ok := ctx.Deadline(); !ok && o.DefaultTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.DefaultTimeout)
		defer cancel()
	}
	prefix := jetstream.DefaultAPIPrefix
	switch {
	case o.APIPrefix != "":
		prefix = strings.TrimSuffix(o.APIPrefix, ".") + "."
	case o.Domain != "":
		prefix = "$JS." + o.Domain + ".API."
	}
	reply, err := s.js.Conn().RequestWithContext(ctx, prefix+"STREAM.MSG.GET."+s.CachedInfo().Config.Name, body)
	if err != nil {
		return nil, err
	}
	var resp struct {
		Error   *jetstream.APIError `json:"error"`
		Message *struct {
			Subject  string    `json:"subject"`
			Sequence uint64    `json:"seq"`
			Header   []byte    `json:"hdrs"`
			Data     []byte    `json:"data"`
			Time     time.Time `json:"time"`
		} `json:"message"`
	}
	if err := json.Unmarshal(reply.Data, &resp); err != nil {
		return nil, fmt.Errorf("message get: %w", err)
	}
	if resp.Error != nil {
		if resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound {
			return nil, jetstream.ErrMsgNotFound
		}
		return nil, resp.Error
	}
	m := resp.Message
	if m == nil {
		return nil, jetstream.ErrInvalidJetStreamResponse
	}
	var hdr nats.Header
	if len(m.Header) > 0 {
		if hdr, err = nats.DecodeHeadersMsg(m.Header); err != nil {
			return nil, err
		}
	}
	return &jetstream.RawStreamMsg{Subject: m.Subject, Sequence: m.Sequence, Header: hdr, Data: m.Data, Time: m.Time}, nil
}
