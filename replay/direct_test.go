package replay_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/ledger"
	"github.com/ledgerworks/ledger/projections"
	"github.com/ledgerworks/ledger/replay"
	rt "github.com/ledgerworks/ledger/replay/replaytest"
)

// directOnly may read the stream LEDGER with direct gets and its info, and
// nothing else: no consumer, no message get from the leader.
var directOnly = &server.Permissions{
	Publish: &server.SubjectPermission{Allow: []string{
		"$JS.API.DIRECT.GET.LEDGER",
		"$JS.API.DIRECT.GET.LEDGER.>",
		"$JS.API.STREAM.INFO.LEDGER",
	}},
	Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
}

// authServer starts a server with an admin (everything) and a reader
// (directOnly) and the ledger stream, and returns the admin's JetStream
// and a function connecting as either.
func authServer(t *testing.T) (*server.Server, jetstream.JetStream, func(user string) (*nats.Conn, jetstream.JetStream)) {
	t.Helper()
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
		Users: []*server.User{{Username: "admin", Password: "admin"}, {Username: "reader", Password: "reader", Permissions: directOnly}},
	})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("server did not start")
	}
	t.Cleanup(s.Shutdown)
	connect := func(user string) (*nats.Conn, jetstream.JetStream) {
		nc, js, err := replay.Dial(replay.DialOptions{URL: fmt.Sprintf("nats://%s:%s@%s", user, user, s.Addr()), Name: user})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc, js
	}
	_, admin := connect("admin")
	if _, err := ledger.EnsureStream(rt.Ctx(t, 10*time.Second), admin, ledger.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	return s, admin, connect
}

// consumerRead reads the messages on filters with an ordered consumer, as
// the stream source read them before it used direct gets.
func consumerRead(t *testing.T, js jetstream.JetStream, filters []string) []replay.Message {
	t.Helper()
	ctx := rt.Ctx(t, 30*time.Second)
	cons, err := js.OrderedConsumer(ctx, events.StreamName, jetstream.OrderedConsumerConfig{FilterSubjects: filters})
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []replay.Message
	for n := info.NumPending; n > 0; {
		batch, err := cons.Fetch(int(min(n, 1000)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			md, err := m.Metadata()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, replay.Message{
				Message: projections.Message{Seq: md.Sequence.Stream, Subject: m.Subject(), Data: m.Data()},
				Time:    md.Timestamp.UTC(),
			})
			n = md.NumPending
		}
		if batch.Error() != nil {
			t.Fatal(batch.Error())
		}
	}
	return out
}

// readAll reads r with src, checking the batch sizes, and returns the
// messages and where the read ended.
func readAll(t *testing.T, src *replay.StreamSource, r replay.Range) ([]replay.Message, uint64, error) {
	t.Helper()
	var out []replay.Message
	to, err := src.Read(rt.Ctx(t, 60*time.Second), r, func(b []replay.Message) error {
		if len(b) == 0 || len(b) > src.Options().Batch {
			t.Fatalf("a batch of %d (batch size %d)", len(b), src.Options().Batch)
		}
		out = append(out, b...)
		return nil
	})
	return out, to, err
}

func inRange(ms []replay.Message, r replay.Range, to uint64) []replay.Message {
	var out []replay.Message
	for _, m := range ms {
		if m.Seq >= r.From && m.Seq <= to {
			out = append(out, m)
		}
	}
	return out
}

// A user who may only get messages directly and see the stream's info
// reads the stream exactly as a consumer reads it (sequences, subjects,
// payloads, timestamps), for every range, partition set and batch size, and
// runs every replay command; it cannot make a consumer.
func TestDirectGetReader(t *testing.T) {
	ctx := rt.Ctx(t, 120*time.Second)
	_, admin, connect := authServer(t)
	bs := rt.Generate(rt.GenOptions{Seed: 5, Events: 3_000, Tenants: 7, Start: time.Date(2026, 3, 29, 0, 30, 0, 0, time.UTC)})
	seqs := rt.AppendAll(t, admin, bs)
	last := seqs[len(seqs)-1]
	_, js := connect("reader")

	parts := map[int]bool{}
	for _, b := range bs {
		parts[events.Partition(b.Tenant)] = true
	}
	var some []int
	for p := range events.Partitions {
		if parts[p] && len(some) < 3 {
			some = append(some, p)
		}
	}
	if len(some) < 3 {
		t.Fatalf("the history uses partitions %v", parts)
	}
	ranges := []replay.Range{{}, {From: 10, To: 50}, {From: last - 3}, {From: last}, {From: last + 5}, {From: 40, To: 20}, {To: last + 10}}
	for _, ps := range [][]int{nil, some[:1], some, {some[1], some[0], some[1]}, {(some[0] + 1) % events.Partitions}} {
		o := replay.StreamOptions{Partitions: ps}
		want := consumerRead(t, admin, o.Filters()[:1])
		if len(ps) > 0 {
			want = consumerRead(t, admin, projections.ProjectorOptions{Partitions: unique(ps)}.Filters())
		}
		for _, batch := range []int{0, 1, 7, 1000} {
			o.Batch = batch
			src, err := replay.NewStreamSource(js, o)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range ranges {
				got, to, err := readAll(t, src, r)
				if err != nil {
					t.Fatalf("partitions %v batch %d range %v: %v", ps, batch, r, err)
				}
				wantTo := r.To
				if wantTo == 0 {
					wantTo = last
				}
				if w := inRange(want, r, wantTo); to != wantTo || !same(got, w) {
					t.Fatalf("partitions %v batch %d range %v: read %d messages to %d, want %d to %d", ps, batch, r, len(got), to, len(w), wantTo)
				}
			}
		}
	}

	src := rt.Source(t, js)
	if _, err := replay.HashRange(ctx, src, replay.Range{}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := replay.At(ctx, src, bs[0].Tenant, nil, replay.AtOptions{Seq: last / 2, TempDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	if _, err := replay.WhatIf(ctx, src, rt.WhatIfProposal(), replay.WhatIfOptions{From: rt.TS("2026-03-29T00:00:00Z"), To: rt.TS("2026-04-01T00:00:00Z")}); err != nil {
		t.Fatal(err)
	}
	if _, err := replay.BuildReport(ctx, src, replay.ReportOptions{From: rt.TS("2026-03-29T00:00:00Z"), To: rt.TS("2026-04-01T00:00:00Z")}); err != nil {
		t.Fatal(err)
	}
	lv := rt.StartLive(t, admin, "")
	lv.Wait(t, last)
	if res, err := replay.Audit(ctx, src, lv.Store, replay.AuditOptions{TempDir: t.TempDir()}); err != nil || !res.OK() {
		t.Fatalf("audit: %v, %+v", err, res)
	}

	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := js.CreateConsumer(short, events.StreamName, jetstream.ConsumerConfig{AckPolicy: jetstream.AckNonePolicy}); err == nil {
		t.Fatal("the reader made a consumer")
	}
}

func unique(ps []int) []int {
	var out []int
	for _, p := range ps {
		if !contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

func contains(ps []int, p int) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

// A publisher may store headers named like those the server adds to a
// direct get reply, an empty message that looks like the end of a batch,
// and (speaking the protocol itself) headers no NATS client can decode. The
// source reads every such message as a consumer does: its true sequence,
// subject and time. The undecodable one takes a message get from the stream
// leader, which a reader without it is told.
func TestDirectGetForgedHeaders(t *testing.T) {
	ctx := rt.Ctx(t, 120*time.Second)
	s, admin, connect := authServer(t)
	subject := events.Subject("mallory", events.ClassUsage)
	stored := uint64(0)
	waitStored := func() {
		stored++
		for {
			st, err := admin.Stream(ctx, events.StreamName)
			if err != nil {
				t.Fatal(err)
			}
			if st.CachedInfo().State.LastSeq == stored {
				return
			}
			if ctx.Err() != nil {
				t.Fatalf("message %d not stored", stored)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// Published without waiting for the stream's answer: a JetStream
	// publish reads a reply that copies the headers as an error.
	pub := func(data string, h nats.Header) {
		m := nats.NewMsg(subject)
		m.Data = []byte(data)
		for k, v := range h {
			m.Header[k] = v
		}
		if err := admin.Conn().PublishMsg(m); err != nil {
			t.Fatal(err)
		}
		waitStored()
	}
	victim := events.Subject("victim", events.ClassUsage)
	pub("one", nil)
	pub("two", nats.Header{"Nats-Subject": {victim}, "Nats-Sequence": {"77"}, "Nats-Time-Stamp": {"2020-01-01T00:00:00Z"}, "Nats-Num-Pending": {"0"}, "Nats-Last-Sequence": {"9"}})
	pub("", nats.Header{"Status": {"204"}, "Description": {"EOB"}, "Nats-Num-Pending": {"0"}, "Nats-Last-Sequence": {"2"}})
	pub("four", nats.Header{"Nats-Sequence": {"abc"}, "Nats-Time-Stamp": {"yesterday"}})
	pub("five", nil)
	rawPublish(t, s.Addr().String(), subject, "NATS/1.0\r\nnot a header line\r\n\r\n", "six")
	waitStored()
	pub("seven", nil)
	if events.Partition("other") == events.Partition("mallory") {
		t.Fatal("pick another tenant")
	}
	if _, err := admin.Publish(ctx, events.Subject("other", events.ClassUsage), []byte("eight")); err != nil {
		t.Fatal(err)
	}
	// What was stored, as the stream leader's message get tells it (a
	// consumer cannot tell: it takes message 3 for a status).
	var all []replay.Message
	for seq := uint64(1); seq <= 8; seq++ {
		reply, err := admin.Conn().RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET.LEDGER", fmt.Appendf(nil, `{"seq":%d}`, seq))
		if err != nil {
			t.Fatal(err)
		}
		var resp struct {
			Message struct {
				Subject string    `json:"subject"`
				Seq     uint64    `json:"seq"`
				Data    []byte    `json:"data"`
				Time    time.Time `json:"time"`
			} `json:"message"`
		}
		if err := json.Unmarshal(reply.Data, &resp); err != nil {
			t.Fatal(err)
		}
		m := resp.Message
		all = append(all, replay.Message{Message: projections.Message{Seq: m.Seq, Subject: m.Subject, Data: m.Data}, Time: m.Time.UTC()})
	}
	if string(all[5].Data) != "six" || all[1].Subject != subject || all[7].Subject == subject {
		t.Fatalf("stored %s", show(all))
	}
	good := all[:5]

	_, adminJS := connect("admin")
	_, readerJS := connect("reader")
	for _, batch := range []int{0, 1, 2, 3, 4} {
		for _, ps := range [][]int{nil, {events.Partition("mallory")}} {
			want := all
			if ps != nil {
				want = all[:7]
			}
			src, err := replay.NewStreamSource(adminJS, replay.StreamOptions{Batch: batch, Partitions: ps})
			if err != nil {
				t.Fatal(err)
			}
			got, _, err := readAll(t, src, replay.Range{})
			if err != nil || !same(got, want) {
				t.Fatalf("batch %d partitions %v: %v\n got %s\nwant %s", batch, ps, err, show(got), show(want))
			}
			src, err = replay.NewStreamSource(readerJS, replay.StreamOptions{Batch: batch, Partitions: ps, Retries: 1})
			if err != nil {
				t.Fatal(err)
			}
			got, _, err = readAll(t, src, replay.Range{To: 5})
			if err != nil || !same(got, good) {
				t.Fatalf("reader, batch %d partitions %v: %v\n got %s\nwant %s", batch, ps, err, show(got), show(good))
			}
		}
	}
	defer replay.SetDirectTimeoutForTest(time.Second)()
	src, err := replay.NewStreamSource(readerJS, replay.StreamOptions{Retries: 1})
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := readAll(t, src, replay.Range{})
	if err == nil || !strings.Contains(err.Error(), "$JS.API.STREAM.MSG.GET.LEDGER") || !same(got, good) {
		t.Fatalf("reader without message get: %v, read %s", err, show(got))
	}
}

// same compares messages, an empty payload equal to none.
func same(a, b []replay.Message) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.Seq != y.Seq || x.Subject != y.Subject || !bytes.Equal(x.Data, y.Data) || !x.Time.Equal(y.Time) || x.Time.Location() != y.Time.Location() {
			return false
		}
	}
	return true
}

func show(ms []replay.Message) string {
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "%d %s %q %s; ", m.Seq, m.Subject, m.Data, m.Time.Format(time.RFC3339Nano))
	}
	return b.String()
}

// rawPublish publishes with the protocol itself, as admin: a client
// library would not send these headers.
func rawPublish(t *testing.T, addr, subject, hdr, data string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	if _, err := r.ReadString('\n'); err != nil { // INFO
		t.Fatal(err)
	}
	connect, _ := json.Marshal(map[string]any{"user": "admin", "pass": "admin", "headers": true, "verbose": false, "pedantic": false})
	fmt.Fprintf(c, "CONNECT %s\r\nHPUB %s %d %d\r\n%s%s\r\nPING\r\n", connect, subject, len(hdr), len(hdr)+len(data), hdr, data)
	if line, err := r.ReadString('\n'); err != nil || line != "PONG\r\n" {
		t.Fatalf("raw publish: %q %v", line, err)
	}
}

// A stream that does not allow direct gets is refused at once, saying so.
func TestDirectGetNotAllowed(t *testing.T) {
	ctx := rt.Ctx(t, 30*time.Second)
	srv, _ := rt.Stream(t)
	_ = srv
	nc, js, err := replay.Dial(replay.DialOptions{URL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	cfg := ledger.StreamConfig(ledger.StreamOptions{Name: "OLD"})
	cfg.Subjects, cfg.AllowDirect = []string{"old.>"}, false
	if _, err := js.CreateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "old.1", []byte("x")); err != nil {
		t.Fatal(err)
	}
	src, err := replay.NewStreamSource(js, replay.StreamOptions{Stream: "OLD"})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := src.Read(ctx, replay.Range{}, func([]replay.Message) error { return nil }); err == nil || !strings.Contains(err.Error(), "allow direct gets") || time.Since(start) > 5*time.Second {
		t.Fatalf("read of a stream without direct gets: %v after %v", err, time.Since(start))
	}
}

// A read stops when its context is cancelled between batches, with the
// context's error, and passes on nothing after.
func TestDirectGetCancel(t *testing.T) {
	_, js := rt.Stream(t)
	seqs := rt.AppendAll(t, js, rt.BillingFixture())
	ctx, cancel := context.WithCancel(rt.Ctx(t, 30*time.Second))
	src, err := replay.NewStreamSource(js, replay.StreamOptions{Batch: 2})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	_, err = src.Read(ctx, replay.Range{}, func(b []replay.Message) error {
		if n += len(b); n >= 4 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || n >= len(seqs) {
		t.Fatalf("cancelled read: %d of %d messages, %v", n, len(seqs), err)
	}
}
