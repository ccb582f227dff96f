package ledger_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ledgerworks/ledger/internal/ledgertest"
	"github.com/ledgerworks/ledger/ledger"
)

// docExample is a `nats req` command from the docs and the reply shown under it.
type docExample struct {
	line    int
	subject string
	body    string
	reply   string
}

// readExamples finds every ```sh block holding one `nats req SUBJECT 'BODY'`
// line that is followed by a ```json block with the reply.
func readExamples(t *testing.T, path string) []docExample {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []docExample
	var pending *docExample
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	n := 0
	var block string
	var buf strings.Builder
	for sc.Scan() {
		n++
		line := sc.Text()
		switch {
		case block == "" && strings.HasPrefix(line, "```"):
			block = strings.TrimPrefix(line, "```")
			buf.Reset()
		case block != "" && line == "```":
			text := strings.TrimSpace(buf.String())
			if block == "sh" && strings.HasPrefix(text, "nats req ") && !strings.Contains(text, "\n") {
				rest := strings.TrimPrefix(text, "nats req ")
				subject, body, ok := strings.Cut(rest, " ")
				if !ok || !strings.HasPrefix(body, "'") || !strings.HasSuffix(body, "'") {
					t.Fatalf("%s:%d: cannot parse %q", path, n, text)
				}
				pending = &docExample{line: n, subject: subject, body: strings.Trim(body, "'")}
			} else if block == "json" && pending != nil {
				pending.reply = text
				out = append(out, *pending)
				pending = nil
			} else {
				pending = nil
			}
			block = ""
		case block != "":
			buf.WriteString(line)
			buf.WriteByte('\n')
		}
	}
	return out
}

// request runs one example with the stock nats CLI when it is installed
// (CI installs it), else with the Go client, sending the same bytes.
func request(t *testing.T, nc *nats.Conn, url string, ex docExample) []byte {
	t.Helper()
	if cli, err := exec.LookPath("nats"); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, cli, "--server", url, "req", "--raw", "--timeout", "5s", ex.subject, ex.body).Output()
		if err != nil {
			t.Fatalf("line %d: nats req: %v", ex.line, err)
		}
		return bytes.TrimSpace(out)
	}
	msg, err := nc.Request(ex.subject, []byte(ex.body), 5*time.Second)
	if err != nil {
		t.Fatalf("line %d: request: %v", ex.line, err)
	}
	return msg.Data
}

// Every `nats req` example in docs/PROTOCOL.md and README.md runs against a
// real ledger, in document order, and gets the reply the docs show. The
// ledger clock is fixed at the time the docs state.
func TestDocsExamplesRun(t *testing.T) {
	clock := time.Date(2026, 1, 15, 10, 0, 0, 0, time.UTC)
	l := ledgertest.StartLedger(t, ledger.Config{Service: ledger.ServiceOptions{Now: func() time.Time { return clock }}})
	nc := ledgertest.Connect(t, l.ClientURL())
	examples := readExamples(t, "../docs/PROTOCOL.md")
	if len(examples) < 10 {
		t.Fatalf("found only %d examples in docs/PROTOCOL.md", len(examples))
	}
	for _, ex := range examples {
		got := request(t, nc, l.ClientURL(), ex)
		var g, w any
		if err := json.Unmarshal(got, &g); err != nil {
			t.Fatalf("line %d: reply %q is not JSON: %v", ex.line, got, err)
		}
		if err := json.Unmarshal([]byte(ex.reply), &w); err != nil {
			t.Fatalf("line %d: documented reply is not JSON: %v", ex.line, err)
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("docs/PROTOCOL.md line %d: nats req %s\n got: %s\nwant: %s", ex.line, ex.subject, got, ex.reply)
		}
	}
}
