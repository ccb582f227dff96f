package cli_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ledgerworks/ledger/internal/cli"
)

var errBoom = errors.New("boom")

// A program of every kind of command: leaves with and without flags, a
// group, a command failing.
func testProgram(ran *[]string) *cli.Command {
	leaf := func(name string) cli.Command {
		return cli.Command{Name: name, Summary: name + " things", Run: func(_ context.Context, call *cli.Call, args []string) error {
			fs := call.Flags()
			n := fs.Int("n", 0, "how many")
			s := fs.String("s", "x", "a `word`")
			if err := call.Parse(args); err != nil {
				return err
			}
			if *n < 0 {
				return cli.Usagef("--n must not be negative")
			}
			if *n == 13 {
				return errBoom
			}
			*ran = append(*ran, fmt.Sprintf("%s n=%d s=%s", call.Path, *n, *s))
			return nil
		}}
	}
	sub := cli.Command{Name: "grp", Summary: "a group", Commands: []cli.Command{leaf("a"), leaf("b")}}
	second := leaf("later")
	second.Group = "more"
	return &cli.Command{Name: "prog", Summary: "a test program", Help: "Exit status: see cli.", Commands: []cli.Command{leaf("one"), sub, second, cli.VersionCommand()}}
}

func TestRun(t *testing.T) {
	for _, c := range []struct {
		args           []string
		status         int
		ran            string
		stdout, stderr string // prefixes ("" is: nothing)
	}{
		{[]string{"one", "--n", "2", "-s=y"}, 0, "prog one n=2 s=y", "", ""},
		{[]string{"grp", "b"}, 0, "prog grp b n=0 s=x", "", ""},
		{[]string{"one", "-h"}, 0, "", "usage: prog one [flags]\n\none things\n\nflags:\n  --n int\n        how many\n  --s word\n        a word (default \"x\")\n", ""},
		{[]string{"--help"}, 0, "", "usage: prog <command> [flags]\n\na test program\n\ncommands:\n  one      one things\n  grp      a group\n\nmore:\n  later    later things\n  version  print the version", ""},
		{[]string{"help", "grp", "a"}, 0, "", "usage: prog grp a [flags]", ""},
		{[]string{"grp", "help"}, 0, "", "usage: prog grp <command> [flags]", ""},
		{nil, 2, "", "", "prog: no command given\nusage: prog <command> [flags]"},
		{[]string{"two"}, 2, "", "", "prog: unknown command \"two\"\nusage: prog <command>"},
		{[]string{"grp"}, 2, "", "", "prog grp: no command given\nusage: prog grp <command>"},
		{[]string{"grp", "c"}, 2, "", "", "prog grp: unknown command \"c\"\nusage: prog grp <command>"},
		{[]string{"-n", "1", "one"}, 2, "", "", "prog: flag provided but not defined: -n (flags go after the command: prog <command> [flags])\n"},
		{[]string{"one", "--m"}, 2, "", "", "prog one: flag provided but not defined: -m\nusage: prog one [flags]"},
		{[]string{"one", "--n", "x"}, 2, "", "", "prog one: invalid value \"x\" for flag -n: parse error\nusage: prog one [flags]"},
		{[]string{"one", "--n"}, 2, "", "", "prog one: flag needs an argument: -n\nusage: prog one [flags]"},
		{[]string{"one", "stray"}, 2, "", "", "prog one: unexpected argument \"stray\": prog one takes flags only\nusage: prog one [flags]"},
		{[]string{"one", "--n", "-1"}, 2, "", "", "prog one: --n must not be negative\nusage: prog one [flags]"},
		{[]string{"one", "--n", "13"}, 1, "", "", "prog: boom\n"},
		{[]string{"version"}, 0, "", "prog " + cli.Version + " commit ", ""},
	} {
		var ran []string
		var stdout, stderr bytes.Buffer
		err := cli.Run(context.Background(), testProgram(&ran), c.args, &stdout, &stderr)
		status := cli.ExitStatus(err)
		if status != c.status || strings.Join(ran, ";") != c.ran ||
			!strings.HasPrefix(stdout.String(), c.stdout) || (c.stdout == "") != (stdout.Len() == 0) ||
			!strings.HasPrefix(stderr.String(), c.stderr) || (c.stderr == "") != (stderr.Len() == 0) {
			t.Errorf("%q: exit %d (%v), ran %q\nstdout: %q\nstderr: %q", c.args, status, err, ran, stdout.String(), stderr.String())
		}
		if c.status == 2 && strings.Count(strings.SplitN(stderr.String(), "usage:", 2)[0], "\n") != 1 {
			t.Errorf("%q: more than one line before the usage:\n%s", c.args, stderr.String())
		}
	}
	if err := cli.Run(context.Background(), testProgram(new([]string)), []string{"one", "--n", "13"}, &bytes.Buffer{}, &bytes.Buffer{}); !errors.Is(err, errBoom) {
		t.Errorf("Run returns %v, not the command's error", err)
	}
}

func TestVersionLine(t *testing.T) {
	line := cli.VersionLine("ledger")
	if !strings.HasPrefix(line, "ledger "+cli.Version+" commit ") || !strings.Contains(line, " go1.") || strings.Contains(line, "\n") {
		t.Errorf("version line %q", line)
	}
}
