package events_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// The event model, the fold and the decision are pure: they take "now" as an
// argument and never reach for storage, the network, the clock or randomness,
// so replaying the same events always gives the same state.

// pureFiles lists the files that must stay pure, relative to this package.
// Listed files must exist, so a rename cannot quietly drop the check.
var pureFiles = []string{
	"../projections/fold.go",
	"../projections/window.go",
	"../projections/query.go",
	"../projections/state.go",
	"../projections/keys.go",
}

// optionalPureFiles are checked when they exist.
var optionalPureFiles = []string{"../ledger/decide.go"}

// forbiddenImport reports why an import path is not allowed in a pure file.
func forbiddenImport(path string) string {
	under := func(prefix string) bool { return path == prefix || strings.HasPrefix(path, prefix+"/") }
	switch {
	case under("github.com/nats-io"):
		return "NATS"
	case under("github.com/cockroachdb/pebble"):
		return "Pebble"
	case under("os"):
		return "the operating system"
	case path == "math/rand", path == "math/rand/v2", path == "crypto/rand":
		return "randomness"
	case under("net"):
		return "the network"
	case under("github.com/prometheus"), under("github.com/ledgerworks/ledger/metrics"):
		return "metrics: they are counted at the edges"
	}
	return ""
}

// clockFuncs are the time functions that read the wall clock.
var clockFuncs = map[string]bool{"Now": true, "Since": true, "Until": true}

// impurities returns one line per forbidden import or clock read in src.
func impurities(fset *token.FileSet, name string, src any) ([]string, error) {
	f, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	var out []string
	timeName := "" // the file's name for package time, if imported
	for _, imp := range f.Imports {
		path, err := strconv.Unquote(imp.Path.Value)
		if err != nil {
			return nil, err
		}
		if why := forbiddenImport(path); why != "" {
			out = append(out, fset.Position(imp.Pos()).String()+": imports "+path+" ("+why+")")
		}
		if path == "time" {
			timeName = "time"
			if imp.Name != nil {
				timeName = imp.Name.Name
			}
		}
	}
	if timeName == "." {
		out = append(out, name+": dot-imports time, which hides clock reads")
	}
	if timeName == "" || timeName == "_" || timeName == "." {
		return out, nil
	}
	ast.Inspect(f, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		if x, ok := sel.X.(*ast.Ident); ok && x.Name == timeName && clockFuncs[sel.Sel.Name] {
			out = append(out, fset.Position(sel.Pos()).String()+": reads the clock with time."+sel.Sel.Name)
		}
		return true
	})
	return out, nil
}

func TestPureFilesArePure(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var check []string
	for _, f := range files {
		if !strings.HasSuffix(f, "_test.go") {
			check = append(check, f)
		}
	}
	if len(check) == 0 {
		t.Fatal("found no source files in events/")
	}
	for _, f := range pureFiles {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("pure file %s: %v (update pureFiles if it moved)", f, err)
			continue
		}
		check = append(check, f)
	}
	for _, f := range optionalPureFiles {
		if _, err := os.Stat(f); err == nil {
			check = append(check, f)
		}
	}
	sort.Strings(check)
	fset := token.NewFileSet()
	for _, f := range check {
		bad, err := impurities(fset, f, nil)
		if err != nil {
			t.Errorf("parse %s: %v", f, err)
			continue
		}
		for _, b := range bad {
			t.Error(b)
		}
	}
}

// The checker itself catches what it is meant to catch.
func TestPurityCheckerCatches(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      int
	}{
		{"clean", `package p
import ("time"; "sort"; "github.com/ledgerworks/ledger/events")
func f(now time.Time) time.Time { sort.Strings(nil); _ = events.Version; return now.Add(time.Second) }`, 0},
		{"time.Now call", `package p
import "time"
func f() time.Time { return time.Now() }`, 1},
		{"time.Now as a value", `package p
import "time"
var clock = time.Now`, 1},
		{"renamed time", `package p
import t "time"
func f() { _ = t.Since(t.Time{}) }`, 1},
		{"a method called Now is fine", `package p
import "time"
type c struct{}
func (c) Now() time.Time { return time.Time{} }
func f(x c) time.Time { return x.Now() }`, 0},
		{"forbidden imports", `package p
import (
	"os"
	"os/exec"
	"math/rand"
	mr "math/rand/v2"
	"net"
	"net/http"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble"
)`, 10},
		{"similar names are fine", `package p
import ("netip_like/x"; "github.com/nats-iox/y"; "osx")`, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad, err := impurities(token.NewFileSet(), "x.go", tc.src)
			if err != nil {
				t.Fatal(err)
			}
			if len(bad) != tc.want {
				t.Fatalf("found %d impurities, want %d: %q", len(bad), tc.want, bad)
			}
		})
	}
}
