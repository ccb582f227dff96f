// Package clitest checks a program built on package cli by running its
// binary: every command of its tree answers -h/--help with its usage and
// exit status 0, and an unknown flag with one error line, the usage and exit
// status 2.
package clitest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ledgerworks/ledger/internal/cli"
)

var (
	mu    sync.Mutex
	built = map[string]string{} // binary name: path
	dirs  []string
)

// Binary builds the main package in the current directory (the test's
// package) as name, once per test process, and returns its path. It builds
// with -race when the test binary was, so that the packages compiled for the
// test are reused. Call Remove from TestMain after m.Run.
func Binary(t *testing.T, name string) string {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if bin, ok := built[name]; ok {
		return bin
	}
	dir, err := os.MkdirTemp("", "clitest-")
	if err != nil {
		t.Fatal(err)
	}
	dirs = append(dirs, dir)
	bin := filepath.Join(dir, name)
	args := []string{"build", "-o", bin}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" && s.Value == "true" {
				args = append(args, "-race")
			}
		}
	}
	if out, err := exec.Command("go", append(args, ".")...).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	built[name] = bin
	return bin
}

// Remove removes the binaries Binary built.
func Remove() {
	mu.Lock()
	defer mu.Unlock()
	for _, d := range dirs {
		os.RemoveAll(d)
	}
	dirs, built = nil, map[string]string{}
}

// Result is what a run of the binary did.
type Result struct {
	Status         int
	Stdout, Stderr string
}

// Exec runs bin with args, without a terminal, and returns what it did.
func Exec(t *testing.T, bin string, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("%s %q: %v", bin, args, err)
	}
	return Result{Status: cmd.ProcessState.ExitCode(), Stdout: out.String(), Stderr: errOut.String()}
}

// Commands returns the argument paths of every command in program's tree,
// groups included, the program itself first as an empty path: {}, {"serve"},
// {"creds"}, {"creds", "add"}, ...
func Commands(program *cli.Command) [][]string {
	var paths [][]string
	var walk func(c *cli.Command, path []string)
	walk = func(c *cli.Command, path []string) {
		paths = append(paths, path)
		for i := range c.Commands {
			walk(&c.Commands[i], append(append([]string{}, path...), c.Commands[i].Name))
		}
	}
	walk(program, []string{})
	return paths
}

// CheckCommands runs bin with every command of program's tree (so that a
// command added to the tree cannot be missed), with --help, -h and with an
// unknown flag, and checks the statuses and outputs of the conventions.
func CheckCommands(t *testing.T, bin string, program *cli.Command) {
	for _, path := range Commands(program) {
		name := strings.Join(append([]string{program.Name}, path...), " ")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			usage := "usage: " + name + " "
			for _, help := range []string{"--help", "-h"} {
				r := Exec(t, bin, append(path, help)...)
				if r.Status != cli.StatusOK || !strings.HasPrefix(r.Stdout, usage) || r.Stderr != "" {
					t.Errorf("%s %s: exit %d, want 0 with the usage on stdout and nothing on stderr\nstdout: %s\nstderr: %s", name, help, r.Status, r.Stdout, r.Stderr)
				}
			}
			r := Exec(t, bin, append(path, "--no-such-flag")...)
			first, rest, _ := strings.Cut(r.Stderr, "\n")
			if r.Status != cli.StatusUsage || r.Stdout != "" ||
				!strings.HasPrefix(first, name+": ") || !strings.Contains(first, "no-such-flag") ||
				!strings.HasPrefix(rest, usage) {
				t.Errorf("%s --no-such-flag: exit %d, want 2 with one error line and the usage on stderr\nstdout: %s\nstderr: %s", name, r.Status, r.Stdout, r.Stderr)
			}
		})
	}
}
