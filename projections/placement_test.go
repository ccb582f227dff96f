package projections_test

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/internal/ledgertest"
	"github.com/ledgerworks/ledger/ledger"
	"github.com/ledgerworks/ledger/projections"
)

// syncBuffer is a log destination the projector's goroutine writes while
// the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A producer allowed only on acme's usage subject publishes, besides its
// usage, a quota and a reservation there, and usage on a subject of another
// partition. The projector folds the usage and nothing else, and moves past
// both messages; the refused reservation's ID stays unseen, so the ledger's
// own reservation under it folds later.
func TestProjectorRefusesMisplacedEvents(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv := ledgertest.StartServer(t, "")
	js := ledgertest.JetStream(t, ledgertest.Connect(t, srv.URL()))
	if _, err := ledger.EnsureStream(ctx, js, ledger.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	store, err := projections.OpenStore(filepath.Join(t.TempDir(), "projection"), projections.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var logs syncBuffer
	p, err := projections.NewProjector(js, store, projections.ProjectorOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("projector: %v", err)
		}
	}()

	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	who := events.Dimensions{events.DimUser: "ana", events.DimModel: "m"}
	usage := events.New("u1", "acme", at, who, &events.UsageRecorded{Amounts: events.Amounts{Tokens: 100, Requests: 1}})
	quota := events.New("q-forged", "acme", at, nil, &events.QuotaSet{Quota: events.Quota{ID: "tokens",
		Limits: []events.Limit{{Metric: events.MetricTokens, Max: 1 << 40, Window: events.Window{Kind: events.Calendar, Unit: events.UnitDay}}}}})
	hold := events.New("r1:created", "acme", at, who, &events.ReservationCreated{Reservation: "r1", Estimate: events.Amounts{Tokens: 500}, ExpiresAt: at.Add(time.Minute)})

	app := ledger.NewAppender(js)
	first, err := app.Append(ctx, "acme", events.ClassUsage, []events.Event{usage, quota, hold}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Usage of acme on a subject of another partition: refused whole.
	wrong := "ledger.ev." + strconv.Itoa((events.Partition("acme")+1)%events.Partitions) + ".acme.usage"
	data, err := events.EncodeBatch([]events.Event{events.New("u2", "acme", at, who, &events.UsageRecorded{Amounts: events.Amounts{Tokens: 1000, Requests: 1}})})
	if err != nil {
		t.Fatal(err)
	}
	ack, err := js.Publish(ctx, wrong, data)
	if err != nil {
		t.Fatal(err)
	}
	if ack.Sequence != first+1 {
		t.Fatalf("messages at %d and %d", first, ack.Sequence)
	}
	if err := p.WaitApplied(ctx, ack.Sequence); err != nil {
		t.Fatal(err)
	}

	if got := p.Applied(); got != ack.Sequence {
		t.Errorf("applied %d, want %d: past both messages", got, ack.Sequence)
	}
	if got := p.Rejected(); got != 3 {
		t.Errorf("rejected %d, want 3 (the quota, the reservation, the message on the wrong partition)", got)
	}
	tot, _, err := p.Totals("acme")
	if err != nil {
		t.Fatal(err)
	}
	if tot[events.MetricTokens] != 100 || tot[events.MetricRequests] != 1 {
		t.Errorf("totals %v, want only u1's 100 tokens and 1 request", tot)
	}
	err = p.View("acme", func(tn *projections.Tenant, _ projections.Counters, _ uint64) error {
		if len(tn.Quotas) != 0 {
			t.Errorf("quotas %v, want none: quota.set is not folded from the usage subject", tn.Quotas)
		}
		if len(tn.Reservations) != 0 {
			t.Errorf("reservations %v, want none: reservation.created is not folded from the usage subject", tn.Reservations)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]bool{"u1": true, "q-forged": false, "r1:created": false, "u2": false} {
		if seen, err := store.Seen("acme", id); err != nil || seen != want {
			t.Errorf("%s seen %v (%v), want %v", id, seen, err, want)
		}
	}
	log := logs.String()
	for _, want := range []string{"q-forged of type quota.set.v1", "r1:created of type reservation.created.v1", "is in partition"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log does not say %q:\n%s", want, log)
		}
	}

	// The same reservation, appended by the ledger on the decision subject.
	seq, err := app.Append(ctx, "acme", events.ClassDecision, []events.Event{hold}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitApplied(ctx, seq); err != nil {
		t.Fatal(err)
	}
	err = p.View("acme", func(tn *projections.Tenant, _ projections.Counters, _ uint64) error {
		if _, ok := tn.Reservations["r1"]; !ok || len(tn.Reservations) != 1 {
			t.Errorf("reservations %v, want r1 from the decision subject", tn.Reservations)
		}
		if tn.LastDecision != seq {
			t.Errorf("last decision %d, want %d", tn.LastDecision, seq)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Rejected(); got != 3 {
		t.Errorf("rejected %d after the decision, want still 3", got)
	}
}
