package replay

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"time"

	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/projections"
)

// Status says what the projector does with an event it reads.
type Status int

// Statuses of a read event.
const (
	// Accepted: the first occurrence of (tenant, id) in stream order; folded.
	Accepted Status = iota
	// Duplicate: its (tenant, id) was accepted earlier; ignored.
	Duplicate
	// Rejected: invalid, or not on its tenant's subject of its class
	// (events.CheckPlacement); ignored.
	Rejected
)

func (s Status) String() string {
	switch s {
	case Accepted:
		return "accepted"
	case Duplicate:
		return "duplicate"
	}
	return "rejected"
}

// Record is one event as read from the stream.
type Record struct {
	Seq     uint64    // stream sequence of its message
	MsgTime time.Time // stream timestamp of its message
	Class   string    // subject class: usage, decision or admin
	Index   int       // position in its message
	Status  Status
	Err     error // why it was rejected
	Event   events.Event
}

// Meta is the stream metadata the fold passes to projections.Evolve.
func (r *Record) Meta() projections.Meta {
	return projections.Meta{Seq: r.Seq, Decision: r.Class == events.ClassDecision}
}

// Refusal is a whole message the projector refuses: its subject is not a
// ledger event subject of its tenant's partition (events.ParseSubject), or
// its data does not decode.
type Refusal struct {
	Seq     uint64
	Subject string
	Err     error
}

// Scanner applies the projector's acceptance rules to messages in stream
// order (see projections.Projector.Apply), with the same functions: a
// message must be on a ledger subject of its tenant's partition
// (events.ParseSubject) and decode; an event must validate and be placed on
// its own tenant's subject of its class (events.CheckPlacement); the first
// occurrence of (tenant, id) wins and later ones are duplicates, however
// they are batched. It also chains the content hash of everything it reads.
//
// The set of seen IDs is kept in memory (about 100 bytes per event).
type Scanner struct {
	seen  map[string]struct{}
	chain Chain

	Messages   int64 // messages read
	Events     int64 // events decoded
	Accepted   int64
	Duplicates int64
	Rejected   int64 // events rejected
	Refused    []Refusal
	First      uint64 // first and last sequence read
	Last       uint64
	LastTime   time.Time // stream timestamp of the last message read
}

// NewScanner returns a scanner that has seen nothing.
func NewScanner() *Scanner { return &Scanner{seen: map[string]struct{}{}} }

// Chain returns the chained hash of what was read so far.
func (s *Scanner) Chain() *Chain { return &s.chain }

// Scan reads one message and calls fn for each of its events, in order.
// fn may keep the record's event, not the record.
func (s *Scanner) Scan(m *Message, fn func(r *Record)) {
	s.Messages++
	if s.First == 0 {
		s.First = m.Seq
	}
	s.Last, s.LastTime = m.Seq, m.Time
	if events.IsBarrier(m.Subject) {
		return // a new owner's mark of a partition's end, as the projector skips it
	}
	evs, decErr := events.DecodeBatch(m.Data)
	if decErr != nil {
		s.chain.addRaw(m.Seq, m.Data)
	} else {
		for i := range evs {
			s.chain.AddEvent(m.Seq, &evs[i])
		}
	}
	tenant, class, err := events.ParseSubject(m.Subject)
	if err != nil {
		s.Refused = append(s.Refused, Refusal{Seq: m.Seq, Subject: m.Subject, Err: err})
		return
	}
	if decErr != nil {
		s.Refused = append(s.Refused, Refusal{Seq: m.Seq, Subject: m.Subject, Err: decErr})
		return
	}
	r := Record{Seq: m.Seq, MsgTime: m.Time, Class: class}
	for i := range evs {
		s.Events++
		r.Index, r.Event, r.Err = i, evs[i], nil
		if err := r.Event.Validate(); err != nil {
			r.Status, r.Err = Rejected, err
		} else if err := events.CheckPlacement(tenant, class, &r.Event); err != nil {
			r.Status, r.Err = Rejected, err
		} else {
			k := tenant + "\x00" + r.Event.ID
			if _, dup := s.seen[k]; dup {
				r.Status = Duplicate
			} else {
				s.seen[k] = struct{}{}
				r.Status = Accepted
			}
		}
		switch r.Status {
		case Accepted:
			s.Accepted++
		case Duplicate:
			s.Duplicates++
		default:
			s.Rejected++
		}
		fn(&r)
	}
}

// Chain is the content hash of a range of the stream, chained over the
// canonical encoding of each event in stream order:
//
//	h_0 = 32 zero bytes
//	h_i = sha256(h_{i-1} || seq_i || canonical_i)
//
// where seq_i is the stream sequence of the event's message as 8 bytes
// big-endian and canonical_i is events.Event.MarshalMsgpack of the event.
// Every event read counts, duplicates and invalid ones included: the hash
// says what the stream holds, not what the fold kept. A message whose data
// does not decode enters as its raw bytes, prefixed by 0xFF (which cannot
// start a canonical event). Two auditors who read the same range get the same
// hash; any changed, added, removed or reordered event changes it.
type Chain struct {
	h      [sha256.Size]byte
	Events int64
}

// AddEvent chains one event.
func (c *Chain) AddEvent(seq uint64, ev *events.Event) {
	b, err := ev.MarshalMsgpack()
	if err != nil { // a decoded event always encodes; keep the chain total anyway
		b = append([]byte{0xFF}, err.Error()...)
	}
	c.add(seq, b)
}

func (c *Chain) addRaw(seq uint64, data []byte) {
	c.add(seq, append([]byte{0xFF}, data...))
}

func (c *Chain) add(seq uint64, b []byte) {
	h := sha256.New()
	h.Write(c.h[:])
	var s [8]byte
	binary.BigEndian.PutUint64(s[:], seq)
	h.Write(s[:])
	h.Write(b)
	h.Sum(c.h[:0])
	c.Events++
}

// Sum returns the hash in hex.
func (c *Chain) Sum() string { return hex.EncodeToString(c.h[:]) }

// HashRange reads a range of the stream and returns what it read, with the
// chained content hash of its events.
func HashRange(ctx context.Context, src Source, r Range, progress *Progress) (StreamRead, error) {
	sc := NewScanner()
	from := max(r.From, 1)
	to, err := readShowing(ctx, src, Range{From: from, To: r.To}, progress, func(batch []Message) error {
		for i := range batch {
			sc.Scan(&batch[i], func(*Record) {})
		}
		return nil
	})
	if err != nil {
		return StreamRead{}, err
	}
	return streamRead(sc, from, to), nil
}
