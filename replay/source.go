package replay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/projections"
)

// Message is one stream message: what the fold reads, and when the stream
// stored it.
type Message struct {
	projections.Message
	// Time is the stream's timestamp of the message (when it was stored).
	Time time.Time
}

// Range selects stream sequences From through To, both included. From 0 is
// the first sequence; To 0 is the stream's last sequence when reading starts,
// so a read always ends even while producers keep appending.
type Range struct {
	From, To uint64
}

// ErrStop, returned by a Read callback, ends the read early without an error.
var ErrStop = errors.New("replay: stop reading")

// Source reads ledger stream messages in stream order.
type Source interface {
	// Last returns the stream's last sequence (0 when it is empty).
	Last(ctx context.Context) (uint64, error)
	// Read calls fn with consecutive batches of the messages of r, in stream
	// order, until r is read, fn returns an error (ErrStop ends it cleanly)
	// or ctx is done. It returns the sequence r ended at (r.To resolved).
	// The batch slice is reused: fn may keep messages, not the slice.
	Read(ctx context.Context, r Range, fn func(batch []Message) error) (to uint64, err error)
}

// StreamOptions configure a StreamSource. The zero value reads every
// partition of the ledger stream in batches of 10,000.
type StreamOptions struct {
	// Stream is the ledger stream (default events.StreamName).
	Stream string
	// Partitions to read (default all). A projection folded from some
	// partitions only compares with one folded from the same ones.
	Partitions []int
	// Batch is how many messages one pull asks for and one callback gets at
	// most (default 10,000).
	Batch int
	// Retries is how many times a read restarts its consumer after an error
	// without progress (default 5).
	Retries int
}

// Validate checks the options.
func (o StreamOptions) Validate() error {
	for _, p := range o.Partitions {
		if p < 0 || p >= events.Partitions {
			return fmt.Errorf("partition %d out of range 0-%d", p, events.Partitions-1)
		}
	}
	if o.Batch < 0 || o.Retries < 0 {
		return errors.New("batch and retries must not be negative")
	}
	return nil
}

func (o StreamOptions) withDefaults() StreamOptions {
	if o.Stream == "" {
		o.Stream = events.StreamName
	}
	if o.Batch == 0 {
		o.Batch = 10_000
	}
	if o.Retries == 0 {
		o.Retries = 5
	}
	return o
}

// Filters returns the filter subjects of the partitions read.
func (o StreamOptions) Filters() []string {
	return projections.ProjectorOptions{Partitions: o.Partitions}.Filters()
}

// StreamSource reads the ledger stream with an ephemeral pull consumer
// (no acknowledgements, memory storage, deleted after the read and cleaned
// up by the server if the reader dies). It needs read access only: stream
// info, consumer create and delete, and pulling messages.
type StreamSource struct {
	js   jetstream.JetStream
	opts StreamOptions
}

// NewStreamSource returns a source reading through js.
func NewStreamSource(js jetstream.JetStream, o StreamOptions) (*StreamSource, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	return &StreamSource{js: js, opts: o.withDefaults()}, nil
}

// Options returns the options in use, defaults filled in.
func (s *StreamSource) Options() StreamOptions { return s.opts }

// Last returns the stream's last sequence.
func (s *StreamSource) Last(ctx context.Context) (uint64, error) {
	st, err := s.js.Stream(ctx, s.opts.Stream)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", s.opts.Stream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream %s info: %w", s.opts.Stream, err)
	}
	return info.State.LastSeq, nil
}

// Read implements Source. A consumer that fails (a lost connection, a
// missed heartbeat, a gap in its delivery sequence) is replaced by one
// starting right after the last message passed on, so nothing is skipped
// or repeated.
func (s *StreamSource) Read(ctx context.Context, r Range, fn func([]Message) error) (uint64, error) {
	to := r.To
	if to == 0 {
		last, err := s.Last(ctx)
		if err != nil {
			return 0, err
		}
		to = last
	}
	pos := max(r.From, 1)
	failures := 0
	for pos <= to {
		before := pos
		done, err := s.readFrom(ctx, &pos, to, fn)
		if errors.Is(err, ErrStop) {
			return to, nil
		}
		if done {
			return to, err
		}
		if ctx.Err() != nil {
			return to, ctx.Err()
		}
		if pos > before {
			failures = 0
		}
		if failures++; failures > s.opts.Retries {
			return to, fmt.Errorf("read stream %s at sequence %d: %w", s.opts.Stream, pos, err)
		}
	}
	return to, nil
}

// readFrom reads from *pos until to. done is false when the read should be
// retried with a new consumer from *pos.
func (s *StreamSource) readFrom(ctx context.Context, pos *uint64, to uint64, fn func([]Message) error) (done bool, err error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	cons, err := s.js.CreateConsumer(cctx, s.opts.Stream, jetstream.ConsumerConfig{
		Description:       "ledger replay (read-only)",
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       *pos,
		AckPolicy:         jetstream.AckNonePolicy,
		FilterSubjects:    s.opts.Filters(),
		InactiveThreshold: time.Minute,
		MemoryStorage:     true,
	})
	cancel()
	if err != nil {
		return false, fmt.Errorf("create consumer: %w", err)
	}
	name := cons.CachedInfo().Name
	defer func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer dcancel()
		_ = s.js.DeleteConsumer(dctx, s.opts.Stream, name) // the inactive threshold cleans up otherwise
	}()
	if cons.CachedInfo().NumPending == 0 {
		return true, nil // nothing matches from *pos on
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(s.opts.Batch))
	if err != nil {
		return false, fmt.Errorf("pull messages: %w", err)
	}
	defer it.Stop()
	batch := make([]Message, 0, s.opts.Batch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := fn(batch)
		if err == nil {
			*pos = batch[len(batch)-1].Seq + 1
		}
		batch = batch[:0]
		return err
	}
	var delivered uint64
	for {
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ferr := flush(); ferr != nil {
				return true, ferr
			}
			if ctx.Err() != nil {
				return true, ctx.Err()
			}
			return false, err
		}
		md, err := m.Metadata()
		if err != nil {
			return true, fmt.Errorf("message metadata: %w", err)
		}
		if delivered++; md.Sequence.Consumer != delivered {
			// A delivery was lost: start again after the last message kept.
			if ferr := flush(); ferr != nil {
				return true, ferr
			}
			return false, fmt.Errorf("consumer delivery sequence %d, expected %d", md.Sequence.Consumer, delivered)
		}
		if md.Sequence.Stream > to {
			return true, flush()
		}
		batch = append(batch, Message{
			Message: projections.Message{Seq: md.Sequence.Stream, Subject: m.Subject(), Data: m.Data()},
			Time:    md.Timestamp.UTC(),
		})
		end := md.Sequence.Stream >= to || md.NumPending == 0
		if end || len(batch) >= s.opts.Batch {
			if err := flush(); err != nil {
				return true, err
			}
		}
		if end {
			return true, nil
		}
	}
}

// MemorySource serves messages held in memory, in the order given (which
// must be increasing sequences). It is the reference the stream source is
// tested against, and lets a program replay an exported stream.
type MemorySource struct {
	Messages []Message
	Batch    int // messages per callback (default 1,000)
}

// Last implements Source.
func (s *MemorySource) Last(context.Context) (uint64, error) {
	if len(s.Messages) == 0 {
		return 0, nil
	}
	return s.Messages[len(s.Messages)-1].Seq, nil
}

// Read implements Source.
func (s *MemorySource) Read(ctx context.Context, r Range, fn func([]Message) error) (uint64, error) {
	to := r.To
	if to == 0 {
		to, _ = s.Last(ctx)
	}
	n := s.Batch
	if n <= 0 {
		n = 1000
	}
	batch := make([]Message, 0, n)
	for i := range s.Messages {
		m := s.Messages[i]
		if m.Seq < r.From {
			continue
		}
		if m.Seq > to {
			break
		}
		batch = append(batch, m)
		if len(batch) == n {
			if err := ctx.Err(); err != nil {
				return to, err
			}
			if err := fn(batch); err != nil {
				if errors.Is(err, ErrStop) {
					return to, nil
				}
				return to, err
			}
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		if err := fn(batch); err != nil && !errors.Is(err, ErrStop) {
			return to, err
		}
	}
	return to, ctx.Err()
}

// readShowing reads r, with r.To resolved first so that progress knows the
// end, and shows progress after every batch.
func readShowing(ctx context.Context, src Source, r Range, p *Progress, fn func([]Message) error) (uint64, error) {
	if r.To == 0 {
		last, err := src.Last(ctx)
		if err != nil {
			return 0, err
		}
		r.To = last
	}
	r.From = max(r.From, 1)
	p.Start(r.From, r.To)
	defer p.Finish()
	return src.Read(ctx, r, func(batch []Message) error {
		if err := fn(batch); err != nil {
			return err
		}
		p.Update(batch[len(batch)-1].Seq, int64(len(batch)))
		return nil
	})
}
