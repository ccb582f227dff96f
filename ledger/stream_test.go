package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/ledger"
)

// streamUsers starts a server whose users are "admin" (everything) and the
// given ones, and returns a JetStream context for a user.
func streamUsers(t *testing.T, users map[string]*server.Permissions) func(user string) jetstream.JetStream {
	t.Helper()
	opts := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
		Users: []*server.User{{Username: "admin", Password: "admin"}}}
	for name, p := range users {
		opts.Users = append(opts.Users, &server.User{Username: name, Password: name, Permissions: p})
	}
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("server did not start")
	}
	t.Cleanup(s.Shutdown)
	return func(user string) jetstream.JetStream {
		nc, err := nats.Connect(fmt.Sprintf("nats://%s:%s@%s", user, user, s.Addr()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		return js
	}
}

// The stream is made with direct gets allowed; one made before them gets
// them from EnsureStream, which updates a stream only when it lacks
// something (a user who may not update streams ensures an up-to-date one).
func TestStreamAllowsDirectGets(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	connect := streamUsers(t, map[string]*server.Permissions{
		"noupdate": {
			Publish:   &server.SubjectPermission{Allow: []string{"$JS.API.>"}, Deny: []string{"$JS.API.STREAM.UPDATE.>", "$JS.API.STREAM.CREATE.>"}},
			Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
		},
	})
	admin, noupdate := connect("admin"), connect("noupdate")

	if cfg := ledger.StreamConfig(ledger.StreamOptions{}); !cfg.AllowDirect || cfg.Name != events.StreamName {
		t.Fatalf("stream config %+v", cfg)
	}
	fresh, err := ledger.EnsureStream(ctx, streamUsers(t, nil)("admin"), ledger.StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if info, err := fresh.Info(ctx); err != nil || !info.Config.AllowDirect {
		t.Fatalf("a new stream: %v, allow direct %v", err, info != nil && info.Config.AllowDirect)
	}

	old := ledger.StreamConfig(ledger.StreamOptions{})
	old.AllowDirect = false
	if _, err := admin.CreateStream(ctx, old); err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(ctx, time.Second)
	defer cancelShort()
	if _, err := ledger.EnsureStream(short, noupdate, ledger.StreamOptions{}); err == nil || !strings.Contains(err.Error(), "allow direct gets") {
		t.Fatalf("an old stream ensured without updating it: %v", err)
	}
	if _, err := ledger.EnsureStream(ctx, admin, ledger.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	st, err := admin.Stream(ctx, events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.CachedInfo().Config; !got.AllowDirect || !got.DenyDelete || !got.DenyPurge || got.Replicas != 1 {
		t.Fatalf("after EnsureStream: %+v", got)
	}
	for _, js := range []jetstream.JetStream{noupdate, admin} {
		if _, err := ledger.EnsureStream(ctx, js, ledger.StreamOptions{}); err != nil {
			t.Fatalf("an up-to-date stream: %v", err)
		}
	}
}

// The stream EnsureStream returns reads a subject's last message and a
// message by sequence from the stream leader, not with direct gets (which a
// replica behind the leader may answer): a user who may get messages from
// the leader and not directly reads them.
func TestStreamReadsFromLeader(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	connect := streamUsers(t, map[string]*server.Permissions{
		"leader": {
			Publish:   &server.SubjectPermission{Allow: []string{"$JS.API.STREAM.INFO.LEDGER", "$JS.API.STREAM.MSG.GET.LEDGER"}},
			Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
		},
	})
	admin := connect("admin")
	if _, err := ledger.EnsureStream(ctx, admin, ledger.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	subject := events.Subject("acme", events.ClassDecision)
	for i := range 3 {
		m := nats.NewMsg(subject)
		m.Data = []byte{byte('a' + i)}
		m.Header.Set("X-Test", "yes")
		if _, err := admin.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := admin.Publish(ctx, events.Subject("beta", events.ClassUsage), []byte("z")); err != nil {
		t.Fatal(err)
	}

	leader := connect("leader")
	st, err := ledger.EnsureStream(ctx, leader, ledger.StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !st.CachedInfo().Config.AllowDirect {
		t.Fatal("the stream does not allow direct gets")
	}
	// A handle from the client library reads with direct gets (which this
	// user may not use); ReadFromLeader makes it read from the leader.
	plain, err := leader.Stream(ctx, events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(ctx, time.Second)
	defer cancelShort()
	if _, err := plain.GetLastMsgForSubject(short, subject); err == nil {
		t.Fatal("the client library's handle read without direct get permission")
	}
	if m, err := ledger.ReadFromLeader(leader, plain).GetLastMsgForSubject(ctx, subject); err != nil || m.Sequence != 3 {
		t.Fatalf("last of %s from the leader: %+v, %v", subject, m, err)
	}
	m, err := st.GetLastMsgForSubject(ctx, subject)
	if err != nil || m.Sequence != 3 || string(m.Data) != "c" || m.Subject != subject || m.Header.Get("X-Test") != "yes" || m.Time.IsZero() {
		t.Fatalf("last of %s: %+v, %v", subject, m, err)
	}
	m, err = st.GetLastMsgForSubject(ctx, events.PartitionFilter(events.Partition("beta")))
	if err != nil || m.Sequence != 4 || string(m.Data) != "z" {
		t.Fatalf("last of beta's partition: %+v, %v", m, err)
	}
	if _, err := st.GetLastMsgForSubject(ctx, events.Subject("nobody", events.ClassDecision)); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Fatalf("last of an empty subject: %v", err)
	}
	m, err = st.GetMsg(ctx, 2)
	if err != nil || m.Sequence != 2 || string(m.Data) != "b" {
		t.Fatalf("message 2: %+v, %v", m, err)
	}
	if _, err := st.GetMsg(ctx, 9); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Fatalf("message 9: %v", err)
	}
	short, cancelShort = context.WithTimeout(ctx, time.Second)
	defer cancelShort()
	if _, err := st.GetMsg(short, 2, jetstream.WithGetMsgSubject(subject)); err == nil {
		t.Fatal("a filtered get, a direct one, went through without direct get permission")
	}
}
