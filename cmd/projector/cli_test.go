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

// Every command of the tree run dispatches on, run as the built binary:
// --help and -h print its usage on stdout and exit 0; an unknown flag prints
// one error line and the usage on stderr and exits 2.
func TestEveryCommandHelpAndBadFlag(t *testing.T) {
	clitest.CheckCommands(t, clitest.Binary(t, "projector"), program)
}

// A projector runs with "projector serve": with no command, or with the
// flags alone as before, it prints the usage and exits 2.
func TestProjectorCommandLine(t *testing.T) {
	bin := clitest.Binary(t, "projector")
	for _, c := range []struct {
		args           []string
		status         int
		stdout, stderr string // prefixes
	}{
		{nil, cli.StatusUsage, "", "projector: no command given\nusage: projector <command>"},
		{[]string{"--nats-url", "nats://127.0.0.1:4222", "--data", "p"}, cli.StatusUsage, "", "projector: flag provided but not defined: --nats-url (flags go after the command: projector <command> [flags])\nusage: projector <command>"},
		{[]string{"help", "serve"}, cli.StatusOK, "usage: projector serve [flags]", ""},
		{[]string{"rebuild", "--nats-url", "nats://127.0.0.1:1"}, cli.StatusUsage, "", "projector rebuild: --data is required\nusage: projector rebuild [flags]"},
		{[]string{"digest"}, cli.StatusUsage, "", "projector digest: --data is required\n"},
		{[]string{"digest", "--data", "/dev/null/projection"}, cli.StatusError, "", "projector: "},
		{[]string{"version"}, cli.StatusOK, "projector " + cli.Version + " commit ", ""},
	} {
		r := clitest.Exec(t, bin, c.args...)
		if r.Status != c.status || !strings.HasPrefix(r.Stdout, c.stdout) || !strings.HasPrefix(r.Stderr, c.stderr) || (c.stdout == "") != (r.Stdout == "") || (c.stderr == "") != (r.Stderr == "") {
			t.Errorf("projector %q: exit %d, want %d\nstdout: %s\nstderr: %s", c.args, r.Status, c.status, r.Stdout, r.Stderr)
		}
	}
}
