package main

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ledgerworks/ledger/internal/ledgertest"
)

// TestSecureQuickstartRuns runs README.md's secure quickstart, line by
// line, as a new user would: `go run ./cmd/ledger ...` is this package's
// run, `nats ...` the stock NATS CLI. The only change is the address, a
// free port instead of 4222 (serve gets --listen, nats gets -s). A line
// whose comment says "refused" must be refused by the server; every other
// nats line must get an answer.
func TestSecureQuickstartRuns(t *testing.T) {
	natsCLI, err := exec.LookPath("nats")
	if err != nil {
		t.Fatal("the stock NATS CLI is not on PATH: go install github.com/nats-io/natscli/nats@v0.5.0 (.ci/run installs it)")
	}
	lines := readmeBlock(t, "## Secure quickstart")
	if len(lines) < 8 {
		t.Fatalf("README's secure quickstart has %d lines", len(lines))
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	t.Chdir(t.TempDir())
	var serveLog *syncBuffer

	for _, line := range lines {
		cmd, comment, _ := strings.Cut(line, "  #")
		args := shellWords(t, cmd)
		refused := strings.Contains(comment, "refused")
		switch {
		case len(args) > 3 && strings.Join(args[:3], " ") == "go run ./cmd/ledger" && args[3] == "serve":
			log, stop := serveUntil(t, append(args[4:], "--listen", addr, "--durability", "periodic")...)
			serveLog = log
			t.Cleanup(func() {
				if err := stop(); err != nil {
					t.Errorf("serve: %v", err)
				}
			})
		case len(args) > 3 && strings.Join(args[:3], " ") == "go run ./cmd/ledger":
			var out syncBuffer
			reloads := 0
			if serveLog != nil {
				reloads = strings.Count(serveLog.String(), "credentials reloaded")
			}
			if err := run(context.Background(), args[3:], &out, &out); err != nil {
				t.Fatalf("%s: %v\n%s", line, err, out.String())
			}
			if serveLog != nil && args[3] == "creds" && args[4] != "ls" {
				// "within a second": the running ledger reloads the file.
				ledgertest.Eventually(t, 5*time.Second, "the ledger to reload its credentials file", func() bool {
					return strings.Count(serveLog.String(), "credentials reloaded") > reloads
				})
			}
		case args[0] == "nats":
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			out, err := exec.CommandContext(ctx, natsCLI, append([]string{"-s", "nats://" + addr, "--timeout", "3s"}, args[1:]...)...).CombinedOutput()
			cancel()
			violation := strings.Contains(string(out), "Violation")
			switch {
			case refused && !violation:
				t.Errorf("%s\nwas not refused:\n%s", line, out)
			case !refused && (err != nil || violation || strings.Contains(string(out), `"error"`)):
				t.Errorf("%s\nfailed: %v\n%s", line, err, out)
			}
			if strings.Contains(cmd, "check.acme") && !refused && !strings.Contains(string(out), `"allowed":true`) {
				t.Errorf("%s\nwas not allowed:\n%s", line, out)
			}
		default:
			t.Fatalf("README line %q: neither go run ./cmd/ledger nor nats", line)
		}
	}
}

// readmeBlock returns the lines of the first ```sh block after heading.
func readmeBlock(t *testing.T, heading string) []string {
	t.Helper()
	f, err := os.Open("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	found, in := false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		text := sc.Text()
		switch {
		case !found:
			found = text == heading
		case !in:
			in = text == "```sh"
		case text == "```":
			return lines
		default:
			lines = append(lines, text)
		}
	}
	t.Fatalf("README.md: no sh block after %q", heading)
	return nil
}

// shellWords splits a command line as sh would for what README uses:
// words separated by spaces, single quotes around words with spaces or
// JSON.
func shellWords(t *testing.T, s string) []string {
	t.Helper()
	var words []string
	var w strings.Builder
	inWord, quoted := false, false
	for _, r := range s {
		switch {
		case quoted && r == '\'':
			quoted = false
		case quoted:
			w.WriteRune(r)
		case r == '\'':
			quoted, inWord = true, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		case r == '"' || r == '$' || r == '`' || r == '\\':
			t.Fatalf("README line %q: %q needs a real shell", s, r)
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if quoted {
		t.Fatalf("README line %q: unterminated quote", s)
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}
