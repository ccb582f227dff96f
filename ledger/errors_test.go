package ledger

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/ledgerworks/ledger/api"
	"github.com/ledgerworks/ledger/events"
)

// An error that is not one of the ledger's typed errors reaches the caller as
// code internal with status 500; the details of a typed error survive.
func TestHandlerErrors(t *testing.T) {
	srv, err := StartServer(ServerOptions{Listen: "127.0.0.1:-1", StoreDir: t.TempDir(), Durability: SyncPeriodic})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	s := &Service{opts: ServiceOptions{}.withDefaults(), nc: nc}
	s.sem = make(chan struct{}, 4)
	svc, err := micro.AddService(nc, micro.Config{Name: "errors", Version: "0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Stop() })
	boom := func(context.Context, request) (any, error) { return nil, errors.New("disk on fire") }
	typed := func(context.Context, request) (any, error) {
		return nil, &events.Error{Code: events.CodeConflict, Message: "taken", Details: map[string]any{"id": "x"}}
	}
	// The handlers serve acme's partition, as the tenant in the subject says.
	p := events.Partition("acme")
	svc.AddEndpoint("boom", s.handler(p, boom), micro.WithEndpointSubject("t.boom.acme"))
	svc.AddEndpoint("typed", s.handler(p, typed), micro.WithEndpointSubject("t.typed.acme"))
	for _, tc := range []struct {
		subject, status string
		code            events.Code
	}{{"t.boom.acme", "500", events.CodeInternal}, {"t.typed.acme", "409", events.CodeConflict}} {
		msg, err := nc.Request(tc.subject, []byte(`{}`), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if got := msg.Header.Get(api.HeaderErrorCode); got != tc.status {
			t.Errorf("%s: status %q, want %s", tc.subject, got, tc.status)
		}
		var er api.ErrorReply
		if err := api.Decode(msg.Data, &er); err != nil || er.Error == nil || er.Error.Code != tc.code {
			t.Errorf("%s: body %s (%v), want code %s", tc.subject, msg.Data, err, tc.code)
		}
	}
}
