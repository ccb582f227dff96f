package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/metrics"
)

// streamState reads the stream's last sequence and, for each partition of
// parts, how far a projection that has folded up to applied is behind it.
// A partition's lag is counted by the stream itself: one direct get of the
// partition's first message past applied, whose reply says how many more
// match (the ledger stream allows direct gets, and every role that folds
// may make them). On a stream without direct gets it is the distance from
// that first message to the partition's last, an upper bound.
func streamState(ctx context.Context, js jetstream.JetStream, stream jetstream.Stream, parts []int, applied uint64) (metrics.StreamState, error) {
	var st metrics.StreamState
	info, err := stream.Info(ctx)
	if err != nil {
		return st, fmt.Errorf("stream info: %w", err)
	}
	st.LastSeq = info.State.LastSeq
	st.Lag = make([]metrics.PartitionLag, len(parts))
	for i, p := range parts {
		st.Lag[i].Partition = p
	}
	if st.LastSeq <= applied {
		return st, nil // nothing past the projection in any partition
	}
	get := apiPrefixOf(js.Options()) + "DIRECT.GET." + info.Config.Name
	errs := make([]error, len(parts))
	var wg sync.WaitGroup
	for i, p := range parts {
		wg.Go(func() {
			f := events.PartitionFilter(p)
			st.Lag[i].Messages, st.Lag[i].Oldest, errs[i] = pendingAfter(ctx, js.Conn(), get, f, applied)
			if errors.Is(errs[i], nats.ErrNoResponders) {
				st.Lag[i].Messages, st.Lag[i].Oldest, errs[i] = spanAfter(ctx, stream, f, applied)
			}
		})
	}
	wg.Wait()
	return st, errors.Join(errs...)
}

// apiPrefixOf is the JetStream API prefix js sends its requests with.
func apiPrefixOf(o jetstream.JetStreamOptions) string {
	switch {
	case o.APIPrefix != "":
		return strings.TrimSuffix(o.APIPrefix, ".") + "."
	case o.Domain != "":
		return "$JS." + o.Domain + ".API."
	}
	return jetstream.DefaultAPIPrefix
}

// pendingAfter counts the stream's messages on filter after sequence
// after, and the stream time of the first of them, with one batched direct
// get (subject get) of that first message: its reply ends with a status
// message carrying Nats-Num-Pending, the matching messages after it.
func pendingAfter(ctx context.Context, nc *nats.Conn, get, filter string, after uint64) (uint64, time.Time, error) {
	body, err := json.Marshal(map[string]any{"seq": after + 1, "next_by_subj": filter, "batch": 1})
	if err != nil {
		return 0, time.Time{}, err
	}
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return 0, time.Time{}, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishRequest(get, inbox, body); err != nil {
		return 0, time.Time{}, err
	}
	var oldest time.Time
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return 0, time.Time{}, fmt.Errorf("direct get on %s: %w", filter, err)
		}
		switch status := m.Header.Get("Status"); status {
		case "404": // nothing on filter past after
			return 0, time.Time{}, nil
		case "204": // the end of the batch: how many match after its message
			n, err := strconv.ParseUint(m.Header.Get("Nats-Num-Pending"), 10, 64)
			if err != nil {
				return 0, time.Time{}, fmt.Errorf("direct get on %s: end of batch without a pending count", filter)
			}
			return n + 1, oldest, nil
		case "503":
			return 0, time.Time{}, fmt.Errorf("direct get on %s: %w (the stream must allow direct gets)", filter, nats.ErrNoResponders)
		case "":
			// The first message past after. Its time is in its headers,
			// unless a publisher stored headers clients cannot decode:
			// then its wait is not known and counts as none.
			oldest, _ = time.Parse(time.RFC3339Nano, m.Header.Get(jetstream.TimeStampHeaer))
		default:
			return 0, time.Time{}, fmt.Errorf("direct get on %s: %s %s", filter, status, m.Header.Get("Description"))
		}
	}
}

// spanAfter is pendingAfter for a stream that does not allow direct gets:
// the stream sequences from the first message on filter after sequence
// after to the last one, which count every message between them (other
// partitions' too, so it is at most the lag), and the first one's time.
func spanAfter(ctx context.Context, stream jetstream.Stream, filter string, after uint64) (uint64, time.Time, error) {
	last, err := stream.GetLastMsgForSubject(ctx, filter)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return 0, time.Time{}, nil
	case err != nil:
		return 0, time.Time{}, fmt.Errorf("last message on %s: %w", filter, err)
	case last.Sequence <= after:
		return 0, time.Time{}, nil
	}
	first, err := stream.GetMsg(ctx, after+1, jetstream.WithGetMsgSubject(filter))
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("first message on %s after %d: %w", filter, after, err)
	}
	return last.Sequence - first.Sequence + 1, first.Time, nil
}
