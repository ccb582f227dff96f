package replay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
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
	// Batch is how many messages one direct get asks for and one callback
	// gets at most (default 10,000). A reply also stops at about 8 MiB.
	Batch int
	// Retries is how many times a read starts again after an error without
	// progress (default 5).
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

// StreamSource reads the ledger stream with batched direct gets (ADR-31):
// each request to $JS.API.DIRECT.GET.<stream> is answered with up to a batch
// of messages and an end-of-batch status. A reader needs the stream's info
// and its direct get API only ($JS.API.STREAM.INFO.<stream>,
// $JS.API.DIRECT.GET.<stream>), not the consumer API, whose push consumers
// deliver to any subject their creator names. The stream must allow direct
// gets, as ledger.StreamConfig does.
//
// Only what the server adds to a reply is believed: a message's sequence,
// subject and time are the last values of its Nats-Sequence, Nats-Subject
// and Nats-Time-Stamp headers, which the server appends after the headers
// the publisher stored (and a publisher may store headers of those names).
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

// Read implements Source. A reply that fails (a lost connection, no answer
// in time, a message missing from a batch) is followed by a new read
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
// retried from *pos. A goroutine fetches the next batch while fn takes the
// last one.
func (s *StreamSource) readFrom(ctx context.Context, pos *uint64, to uint64, fn func([]Message) error) (done bool, err error) {
	r, err := s.newReader(*pos, to)
	if err != nil {
		return false, err
	}
	defer r.close()
	type filled struct {
		batch []Message
		end   bool
		err   error
	}
	fctx, stop := context.WithCancel(ctx)
	out := make(chan filled, 1)
	free := make(chan []Message, 2)
	for range cap(free) {
		free <- make([]Message, 0, s.opts.Batch)
	}
	go func() {
		defer close(out)
		for {
			var batch []Message
			select {
			case batch = <-free:
			case <-fctx.Done():
				return
			}
			batch, end, err := r.fill(fctx, batch[:0], s.opts.Batch)
			out <- filled{batch, end, err}
			if end || err != nil {
				return
			}
		}
	}()
	defer func() {
		stop()
		for range out { // until the fetching goroutine has ended
		}
	}()
	for f := range out {
		if len(f.batch) > 0 {
			if err := fn(f.batch); err != nil {
				return true, err
			}
			*pos = f.batch[len(f.batch)-1].Seq + 1
		}
		free <- f.batch
		switch {
		case f.err != nil && ctx.Err() != nil:
			return true, ctx.Err()
		case f.err != nil:
			return false, f.err
		case f.end:
			return true, nil
		}
	}
	return true, ctx.Err()
}

// directMaxBytes is about the most one direct get reply carries (the
// server stops after the message that reaches it): well under what a
// connection may hold unread on either side (64 MiB by default).
const directMaxBytes = 8 << 20

// directTimeout is how long a direct get waits for its reply to begin and
// end. A reply cut short is continued by the next request.
var directTimeout = 10 * time.Second

// directGetRequest is the body of a (batched) direct get, and of a message
// get from the stream leader.
type directGetRequest struct {
	Seq      uint64 `json:"seq,omitempty"`
	NextFor  string `json:"next_by_subj,omitempty"`
	Batch    int    `json:"batch,omitempty"`
	MaxBytes int    `json:"max_bytes,omitempty"`
}

// reader reads the messages on some filter subjects, from one sequence to
// another, in stream order: a cursor per filter, merged by sequence (the
// filters are disjoint partitions, or the one filter of all of them). All
// replies arrive on one subscription, each request on a subject of its own.
type reader struct {
	nc       *nats.Conn
	get      string // $JS.API.DIRECT.GET.<stream>
	msgGet   string // $JS.API.STREAM.MSG.GET.<stream>
	sub      *nats.Subscription
	inbox    string
	requests uint64
	batch    int
	to       uint64
	cursors  []*cursor
}

// cursor is where the read of one filter subject is.
type cursor struct {
	filter string
	next   uint64    // the first sequence not read yet
	buf    []Message // read, not passed on yet, in stream order
	end    bool      // nothing more matches up to the reader's end
}

func (s *StreamSource) newReader(from, to uint64) (*reader, error) {
	nc := s.js.Conn()
	prefix := apiPrefix(s.js.Options())
	r := &reader{
		nc:     nc,
		get:    prefix + "DIRECT.GET." + s.opts.Stream,
		msgGet: prefix + "STREAM.MSG.GET." + s.opts.Stream,
		inbox:  nc.NewInbox(),
		batch:  s.opts.Batch,
		to:     to,
	}
	for _, f := range s.opts.Filters() {
		if !slices.ContainsFunc(r.cursors, func(c *cursor) bool { return c.filter == f }) {
			r.cursors = append(r.cursors, &cursor{filter: f, next: from})
		}
	}
	var err error
	if r.sub, err = nc.SubscribeSync(r.inbox + ".*"); err != nil {
		return nil, fmt.Errorf("subscribe to direct get replies: %w", err)
	}
	return r, nil
}

func (r *reader) close() { _ = r.sub.Unsubscribe() }

// apiPrefix is the JetStream API prefix js sends requests with.
func apiPrefix(o jetstream.JetStreamOptions) string {
	switch {
	case o.APIPrefix != "":
		return strings.TrimSuffix(o.APIPrefix, ".") + "."
	case o.Domain != "":
		return "$JS." + o.Domain + ".API."
	default:
		return jetstream.DefaultAPIPrefix
	}
}

// fill appends to batch the next messages, at most n; end reports that the
// read is complete.
func (r *reader) fill(ctx context.Context, batch []Message, n int) (_ []Message, end bool, err error) {
	for len(batch) < n {
		// The next message is known once every cursor that has not ended
		// holds one: the lowest sequence among them.
		var first *cursor
		bound := uint64(math.MaxUint64) // the lowest next sequence of the others
		for _, c := range r.cursors {
			if len(c.buf) == 0 && !c.end {
				if err := r.fetch(ctx, c); err != nil {
					return batch, false, err
				}
			}
			switch {
			case len(c.buf) == 0:
			case first == nil:
				first = c
			case c.buf[0].Seq < first.buf[0].Seq:
				bound = min(bound, first.buf[0].Seq)
				first = c
			default:
				bound = min(bound, c.buf[0].Seq)
			}
		}
		if first == nil {
			return batch, true, nil
		}
		i := 1
		for i < len(first.buf) && first.buf[i].Seq < bound && len(batch)+i < n {
			i++
		}
		batch = append(batch, first.buf[:i]...)
		first.buf = first.buf[i:]
		if last := batch[len(batch)-1].Seq; bound == last { // overlapping filters: pass a message on once
			for _, c := range r.cursors {
				if len(c.buf) > 0 && c.buf[0].Seq == last {
					c.buf = c.buf[1:]
				}
			}
		}
	}
	return batch, false, nil
}

// fetch reads the next messages of c's filter. Unless it fails, c then holds
// a message or has ended. A reply that fails after some messages keeps
// them: the next request, from the message that failed, tells the error.
func (r *reader) fetch(ctx context.Context, c *cursor) error {
	c.buf = c.buf[:0]
	err := r.request(ctx, c)
	if err != nil && len(c.buf) > 0 && ctx.Err() == nil {
		return nil
	}
	return err
}

func (r *reader) request(ctx context.Context, c *cursor) error {
	if c.next > r.to {
		c.end = true
		return nil
	}
	req, err := json.Marshal(directGetRequest{Seq: c.next, NextFor: c.filter, Batch: int(min(uint64(r.batch), r.to-c.next+1)), MaxBytes: directMaxBytes})
	if err != nil {
		return err
	}
	r.requests++
	reply := r.inbox + "." + strconv.FormatUint(r.requests, 10)
	if err := r.nc.PublishRequest(r.get, reply, req); err != nil {
		return fmt.Errorf("direct get: %w", err)
	}
	rctx, cancel := context.WithTimeout(ctx, directTimeout)
	defer cancel()
	var prev uint64 // the sequence of the reply's last message
	for {
		m, err := r.sub.NextMsgWithContext(rctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, nats.ErrNoResponders) {
				return fmt.Errorf("direct get: %w (the stream must allow direct gets)", err)
			}
			return fmt.Errorf("direct get from sequence %d: %w", c.next, err)
		}
		if m.Subject != reply {
			continue // the rest of a reply given up on
		}
		var msg Message
		switch {
		case len(m.Header[jetstream.SequenceHeader]) > 0: // a stored message
			if last, err := lastUint(m.Header, "Nats-Last-Sequence"); err != nil || last != prev {
				return fmt.Errorf("direct get reply from sequence %d lost a message after %d", c.next, prev)
			}
			if msg, err = storedMessage(m); err != nil {
				return err
			}
		case m.Header == nil:
			// A stored message whose headers the client could not decode
			// (a publisher may store any bytes there): the leader's JSON
			// answer tells its sequence, subject and time.
			if msg, err = r.leaderNext(ctx, c.next, c.filter); err != nil {
				return err
			}
		case m.Header.Get("Status") == "204": // the end of the batch
			if last, err := lastUint(m.Header, "Nats-Last-Sequence"); err != nil || last != prev {
				return fmt.Errorf("direct get reply from sequence %d lost its messages after %d", c.next, prev)
			}
			if pending, err := lastUint(m.Header, "Nats-Num-Pending"); err == nil && pending == 0 {
				c.end = true
			}
			if len(c.buf) == 0 && !c.end {
				return fmt.Errorf("direct get from sequence %d: an empty batch", c.next)
			}
			return nil
		case m.Header.Get("Status") == "404": // nothing matches from c.next on
			c.end = true
			return nil
		default:
			return fmt.Errorf("direct get: %s %s", m.Header.Get("Status"), m.Header.Get("Description"))
		}
		if msg.Seq > r.to {
			c.end = true
			return nil
		}
		c.buf = append(c.buf, msg)
		prev, c.next = msg.Seq, msg.Seq+1
		if msg.Seq == r.to {
			c.end = true
			return nil
		}
	}
}

// storedMessage is the message a direct get reply carries.
func storedMessage(m *nats.Msg) (Message, error) {
	seq, err := lastUint(m.Header, jetstream.SequenceHeader)
	if err != nil {
		return Message{}, err
	}
	subject := lastValue(m.Header, jetstream.SubjectHeader)
	at, err := time.Parse(time.RFC3339Nano, lastValue(m.Header, jetstream.TimeStampHeaer))
	if err != nil || subject == "" {
		return Message{}, fmt.Errorf("direct get reply for sequence %d: no subject or time", seq)
	}
	return Message{Message: projections.Message{Seq: seq, Subject: subject, Data: m.Data}, Time: at.UTC()}, nil
}

// leaderNext gets the first message from sequence from on filter from the
// stream leader.
func (r *reader) leaderNext(ctx context.Context, from uint64, filter string) (Message, error) {
	fail := func(err error) (Message, error) {
		return Message{}, fmt.Errorf("the message after sequence %d has headers NATS clients cannot decode; reading it takes %s: %w", from-1, r.msgGet, err)
	}
	req, err := json.Marshal(directGetRequest{Seq: from, NextFor: filter})
	if err != nil {
		return Message{}, err
	}
	rctx, cancel := context.WithTimeout(ctx, directTimeout)
	defer cancel()
	reply, err := r.nc.RequestWithContext(rctx, r.msgGet, req)
	if err != nil {
		return fail(err)
	}
	var resp struct {
		Error   *jetstream.APIError `json:"error"`
		Message *struct {
			Subject string    `json:"subject"`
			Seq     uint64    `json:"seq"`
			Data    []byte    `json:"data"`
			Time    time.Time `json:"time"`
		} `json:"message"`
	}
	if err := json.Unmarshal(reply.Data, &resp); err != nil {
		return fail(err)
	}
	if resp.Error != nil {
		return fail(resp.Error)
	}
	if resp.Message == nil {
		return fail(errors.New("no message in the answer"))
	}
	m := resp.Message
	return Message{Message: projections.Message{Seq: m.Seq, Subject: m.Subject, Data: m.Data}, Time: m.Time.UTC()}, nil
}

// lastValue is the last value of a header: the one the server appended.
func lastValue(h nats.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[len(v)-1]
	}
	return ""
}

func lastUint(h nats.Header, key string) (uint64, error) {
	return strconv.ParseUint(lastValue(h, key), 10, 64)
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
