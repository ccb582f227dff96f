package main

import (
	"os"
	"strings"
	"testing"

	"github.com/ledgerworks/ledger/internal/cli"
	"github.com/ledgerworks/ledger/internal/cli/clitest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	clitest.Remove()
	os.Exit(code)
}

// Every command of the tree run dispatches on (so a new one cannot be
// missed), run as the built binary: --help and -h print its usage on stdout
// and exit 0; an unknown flag prints one error line and the usage on stderr
// and exits 2.
func TestEveryCommandHelpAndBadFlag(t *testing.T) {
	clitest.CheckCommands(t, clitest.Binary(t, "ledger"), program)
}

// The program's own command line: no command, an unknown one, help on a
// command, and version.
func TestLedgerCommandLine(t *testing.T) {
	bin := clitest.Binary(t, "ledger")
	for _, c := range []struct {
		args           []string
		status         int
		stdout, stderr string // prefixes
	}{
		{nil, cli.StatusUsage, "", "ledger: no command given\nusage: ledger <command>"},
		{[]string{"nosuch"}, cli.StatusUsage, "", "ledger: unknown command \"nosuch\"\nusage: ledger <command>"},
		{[]string{"--data", "x", "serve"}, cli.StatusUsage, "", "ledger: flag provided but not defined: --data (flags go after the command: ledger <command> [flags])\nusage: ledger <command>"},
		{[]string{"help"}, cli.StatusOK, "usage: ledger <command>", ""},
		{[]string{"help", "report"}, cli.StatusOK, "usage: ledger report [flags]", ""},
		{[]string{"creds"}, cli.StatusUsage, "", "ledger creds: no command given\nusage: ledger creds <command>"},
		{[]string{"creds", "ls"}, cli.StatusUsage, "", "ledger creds ls: --auth FILE is required\nusage: ledger creds ls [flags]"},
		{[]string{"report", "extra"}, cli.StatusUsage, "", "ledger report: unexpected argument \"extra\""},
		{[]string{"report", "--from", "2026-03-01"}, cli.StatusUsage, "", "ledger report: --from and --to are required\nusage: ledger report [flags]"},
		{[]string{"report", "--progress", "sometimes"}, cli.StatusUsage, "", "ledger report: invalid value \"sometimes\" for flag -progress: progress \"sometimes\": use auto, bar, lines or off\n"},
		{[]string{"health"}, cli.StatusUsage, "", "ledger health: give --http URL, or --nats-url URLS with --member NAME\nusage: ledger health [flags]"},
		{[]string{"hash", "--nats-url", "nats://127.0.0.1:1", "--quiet"}, cli.StatusError, "", "ledger: "},
		{[]string{"version"}, cli.StatusOK, "ledger " + cli.Version + " commit ", ""},
	} {
		r := clitest.Exec(t, bin, c.args...)
		if r.Status != c.status || !strings.HasPrefix(r.Stdout, c.stdout) || !strings.HasPrefix(r.Stderr, c.stderr) || (c.stdout == "") != (r.Stdout == "") || (c.stderr == "") != (r.Stderr == "") {
			t.Errorf("ledger %q: exit %d, want %d\nstdout: %s\nstderr: %s", c.args, r.Status, c.status, r.Stdout, r.Stderr)
		}
	}
}
