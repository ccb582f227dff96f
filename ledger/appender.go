package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ledgerworks/ledger/events"
)

// Appender appends events to the ledger stream.
type Appender struct {
	js jetstream.JetStream
}

// NewAppender returns an appender publishing through js.
func NewAppender(js jetstream.JetStream) *Appender { return &Appender{js: js} }

// Fence makes an append conditional on the last sequence of its subject, so
// that two deciders cannot both act on the same state.
type Fence struct {
	LastSeq uint64
}

// Append publishes one tenant's events of one subject class as one stream
// message and waits for the stream's acknowledgement. With a fence, it fails
// with events.ErrConflict when another message reached the subject first.
//
// An unfenced append carries a Nats-Msg-Id (the batch id), so that the
// stream drops a retry. A fenced one carries none: a second copy of it is
// refused by its own fence, since the first moved the subject's last
// sequence, and every id would cost the server about 200 bytes for the
// whole duplicate window (millions of ids at a busy tenant's decision rate).
func (a *Appender) Append(ctx context.Context, tenant, class string, evs []events.Event, fence *Fence) (uint64, error) {
	data, err := events.EncodeBatch(evs)
	if err != nil {
		return 0, err
	}
	msg := nats.NewMsg(events.Subject(tenant, class))
	msg.Data = data
	var opt jetstream.PublishOpt
	if fence != nil {
		opt = jetstream.WithExpectLastSequencePerSubject(fence.LastSeq)
	} else {
		opt = jetstream.WithMsgID(events.BatchID(evs))
	}
	ack, err := a.js.PublishMsg(ctx, msg, opt)
	if err != nil {
		return 0, translatePublishError(err)
	}
	return ack.Sequence, nil
}

// JetStream error codes that mean "another writer got there first". On one
// replica a wrong last sequence is 10071; on a replicated stream a write with
// another expectation in flight for the subject is refused with 10164.
const (
	errCodeWrongLastSequence   = 10071
	errCodeExpectationInFlight = 10164
)

// translatePublishError maps JetStream's errors onto the ledger's codes. It
// is the only place that knows JetStream error numbers.
func translatePublishError(err error) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case errCodeWrongLastSequence, errCodeExpectationInFlight:
			return &events.Error{Code: events.CodeConflict, Message: "another decision reached the stream first", Details: map[string]any{"jetstream_code": int(apiErr.ErrorCode)}}
		}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
		return &events.Error{Code: events.CodeUnavailable, Message: "the stream did not acknowledge: " + err.Error(), Suggestion: "retry with the same event IDs; a retry is never counted twice"}
	}
	return fmt.Errorf("append to stream: %w", err)
}
