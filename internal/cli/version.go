package cli

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Version is the release the binaries were built as, set by the linker:
//
//	go build -ldflags "-X github.com/ledgerworks/ledger/internal/cli.Version=$(git describe --tags --always --dirty)"
//
// deploy/build-images.sh does. It stays "dev" otherwise.
var Version = "dev"

// VersionLine is what "<program> version" prints: the version, then the
// commit, its time and whether the tree had changes, as go build stamped
// them (vcs.revision, vcs.time, vcs.modified), and the Go toolchain:
//
//	ledger v0.4.0 commit 0123abcd… (2026-05-01T10:00:00Z, modified) go1.26.8 linux/amd64
//
// The commit is "unknown" in a binary built without that stamp (go run,
// -buildvcs=false, or outside a git checkout).
func VersionLine(program string) string {
	commit, when, modified := "unknown", "", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.time":
				when = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	var detail []string
	if when != "" {
		detail = append(detail, when)
	}
	if modified {
		detail = append(detail, "modified")
	}
	line := fmt.Sprintf("%s %s commit %s", program, Version, commit)
	if len(detail) > 0 {
		line += " (" + strings.Join(detail, ", ") + ")"
	}
	return fmt.Sprintf("%s %s %s/%s", line, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// VersionCommand is the "version" command of a program.
func VersionCommand() Command {
	return Command{
		Name:    "version",
		Summary: "print the version and the commit this binary was built from",
		Run: func(_ context.Context, call *Call, args []string) error {
			if err := call.Parse(args); err != nil {
				return err
			}
			program, _, _ := strings.Cut(call.Path, " ")
			_, err := fmt.Fprintln(call.Stdout, VersionLine(program))
			return err
		},
	}
}
