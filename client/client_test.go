package client_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ledgerworks/ledger/api"
	"github.com/ledgerworks/ledger/client"
	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/internal/ledgertest"
)

// With no ledger answering, a request fails fast with the typed
// unavailable error and a suggestion, not a bare NATS error.
func TestNoLedgerIsUnavailable(t *testing.T) {
	srv := ledgertest.StartServer(t, "")
	c, err := client.New(ledgertest.Connect(t, srv.URL()), client.WithTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Check(context.Background(), api.CheckRequest{Tenant: "acme"})
	var e *events.Error
	if !errors.Is(err, events.ErrUnavailable) || !errors.As(err, &e) || e.Suggestion == "" {
		t.Fatalf("check without a ledger: %v, want unavailable with a suggestion", err)
	}
	if _, err := client.New(nil); err == nil {
		t.Fatal("client.New(nil) must fail")
	}
	if _, err := client.New(ledgertest.Connect(t, srv.URL()), client.WithTimeout(-time.Second)); err == nil {
		t.Fatal("a negative timeout must be refused")
	}
}
