package ledger_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/internal/ledgertest"
	"github.com/ledgerworks/ledger/ledger"
)

// A retried unfenced append is dropped by the stream's duplicate window; a
// retried fenced append is refused by its own fence, so it needs no message
// id (and costs the server none for the window's length).
func TestAppendRetriesLandOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv := ledgertest.StartServer(t, "")
	js := ledgertest.JetStream(t, ledgertest.Connect(t, srv.URL()))
	stream, err := ledger.EnsureStream(ctx, js, ledger.StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	app := ledger.NewAppender(js)
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	usage := []events.Event{events.New("u-1", "acme", at, events.Dimensions{events.DimUser: "ana"}, &events.UsageRecorded{Amounts: events.Amounts{Requests: 1}})}
	decision := []events.Event{events.New("d-1", "acme", at, events.Dimensions{events.DimUser: "ana"}, &events.UsageRecorded{Amounts: events.Amounts{Requests: 1}})}

	first, err := app.Append(ctx, "acme", events.ClassUsage, usage, nil)
	if err != nil {
		t.Fatal(err)
	}
	again, err := app.Append(ctx, "acme", events.ClassUsage, usage, nil)
	if err != nil || again != first {
		t.Fatalf("retried usage append: seq %d, %v; want the first one's, %d", again, err, first)
	}

	fenced, err := app.Append(ctx, "acme", events.ClassDecision, decision, &ledger.Fence{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.Append(ctx, "acme", events.ClassDecision, decision, &ledger.Fence{}); !errors.Is(err, events.ErrConflict) {
		t.Fatalf("retried fenced append: %v, want a conflict", err)
	}

	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 {
		t.Errorf("stream holds %d messages, want 2: each append once", info.State.Msgs)
	}
	for _, tc := range []struct {
		seq   uint64
		msgID bool
	}{{first, true}, {fenced, false}} {
		m, err := stream.GetMsg(ctx, tc.seq)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Header.Get(jetstream.MsgIDHeader) != ""; got != tc.msgID {
			t.Errorf("message %d (%s): has a message id %t, want %t", tc.seq, m.Subject, got, tc.msgID)
		}
	}
}
