package replay_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ledgerworks/ledger/ledger"
	"github.com/ledgerworks/ledger/replay"
	rt "github.com/ledgerworks/ledger/replay/replaytest"
)

// auditorPermissions are all a read-only auditor of the stream LEDGER
// needs: the stream's info and direct gets, and its own inboxes. No consumer
// API: a push consumer would deliver to any subject its creator names.
var auditorPermissions = &server.Permissions{
	Publish: &server.SubjectPermission{Allow: []string{
		"$JS.API.STREAM.INFO.LEDGER",
		"$JS.API.DIRECT.GET.LEDGER",
		"$JS.API.DIRECT.GET.LEDGER.>",
	}},
	Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
}

// A user with the documented read-only permissions can hash, rebuild and
// bill the stream, and cannot write to it or delete it.
func TestReadOnlyAuditor(t *testing.T) {
	ctx := rt.Ctx(t, 60*time.Second)
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
		Users: []*server.User{{Username: "admin", Password: "admin"}, {Username: "auditor", Password: "auditor", Permissions: auditorPermissions}},
	})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("server did not start")
	}
	t.Cleanup(s.Shutdown)
	url := func(user string) string { return fmt.Sprintf("nats://%s:%s@%s", user, user, s.Addr()) }

	anc, err := nats.Connect(url("admin"))
	if err != nil {
		t.Fatal(err)
	}
	defer anc.Close()
	ajs, _ := jetstream.New(anc)
	if _, err := ledger.EnsureStream(ctx, ajs, ledger.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	rt.AppendAll(t, ajs, rt.BillingFixture())
	want, err := replay.HashRange(ctx, rt.Source(t, ajs), replay.Range{}, nil)
	if err != nil {
		t.Fatal(err)
	}

	nc, js, err := replay.Dial(replay.DialOptions{URL: url("auditor"), Name: "auditor"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	src, err := replay.NewStreamSource(js, replay.StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := replay.HashRange(ctx, src, replay.Range{}, nil)
	if err != nil || got != want {
		t.Fatalf("auditor's hash %+v (%v), admin's %+v", got, err, want)
	}
	if _, err := replay.Rebuild(ctx, src, replay.RebuildOptions{Dir: filepath.Join(t.TempDir(), "p")}); err != nil {
		t.Fatal(err)
	}
	if _, err := replay.BuildReport(ctx, src, replay.ReportOptions{From: rt.TS("2026-03-28T00:00:00Z"), To: rt.TS("2026-03-30T00:00:00Z")}); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := js.Publish(short, "ledger.ev.0.acme.usage", []byte("forged")); err == nil {
		t.Fatal("the auditor could append to the stream")
	}
	if err := js.DeleteStream(short, "LEDGER"); err == nil || errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("the auditor could delete the stream: %v", err)
	}
	last, err := src.Last(ctx)
	if err != nil || last != uint64(len(rt.BillingFixture())) {
		t.Fatalf("stream at %d (%v) after the auditor's attempts", last, err)
	}
}
