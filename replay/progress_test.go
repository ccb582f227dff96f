package replay_test

import (
	"bytes"
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ledgerworks/ledger/replay"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestProgressLines(t *testing.T) {
	var out bytes.Buffer
	p := replay.NewProgress(&out, "rebuild", replay.ProgressLines)
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	p.SetClock(clk.now, 5*time.Second)
	p.Start(1, 1000)
	clk.t = clk.t.Add(time.Second)
	p.Update(100, 100) // too soon: nothing shown
	if out.Len() != 0 {
		t.Fatalf("shown too soon: %q", out.String())
	}
	clk.t = clk.t.Add(4 * time.Second)
	p.Update(250, 150)
	want := "rebuild: seq 250/1000 (25.0%), 250 msgs, 50 msg/s, ETA 15s\n"
	if out.String() != want {
		t.Fatalf("got %q, want %q", out.String(), want)
	}
	clk.t = clk.t.Add(5 * time.Second)
	p.Finish()
	if !strings.HasSuffix(out.String(), "rebuild: seq 250/1000 (25.0%), 250 msgs, 25 msg/s, done in 10s\n") {
		t.Fatalf("final line: %q", out.String())
	}
}

// The bar (github.com/schollz/progressbar), forced onto a buffer, shows the
// label, the sequences done of those to read and the rate; it ends its line
// once, where the replay stopped or full.
func TestProgressBar(t *testing.T) {
	var out bytes.Buffer
	p := replay.NewProgress(&out, "report", replay.ProgressBar)
	p.SetClock(time.Now, 0) // every update drawn
	p.Start(101, 1100)      // 1000 sequences
	p.Update(600, 500)
	got := out.String()
	for _, want := range []string{"report", "50%", "500/1000", "msg/s"} {
		if !strings.Contains(got, want) {
			t.Errorf("bar %q lacks %q", got, want)
		}
	}
	if strings.Contains(got, "\n") {
		t.Errorf("the bar ended its line before the replay did: %q", got)
	}
	p.Finish() // stopped half way: the bar stays at 500
	if got := out.String(); strings.Count(got, "\n") != 1 || !strings.HasSuffix(got, "\n") || strings.Contains(got, "1000/1000") {
		t.Errorf("after Finish half way: %q", got)
	}

	out.Reset()
	p.Start(1, 10)
	p.Update(10, 10)
	p.Finish()
	if got := out.String(); !strings.Contains(got, "10/10") || strings.Count(got, "\n") != 1 || !strings.HasSuffix(got, "\n") {
		t.Errorf("full bar: %q", got)
	}

	out.Reset()
	p.Start(5, 4) // nothing to read: no bar
	p.Finish()
	if out.Len() != 0 {
		t.Errorf("empty range: %q", out.String())
	}
}

// With auto, progress needs stdout and stderr to be terminals: a buffer, a
// file or a pipe gets nothing. --quiet shows nothing whatever --progress
// says; off is nil, a *Progress that does nothing.
func TestProgressAutoAndQuiet(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if replay.IsTerminal(&stderr) {
		t.Fatal("a buffer is not a terminal")
	}
	if f, err := os.CreateTemp(t.TempDir(), "out"); err != nil {
		t.Fatal(err)
	} else if replay.IsTerminal(f) {
		t.Fatal("a file is not a terminal")
	}
	if null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0); err == nil && replay.IsTerminal(null) {
		t.Fatal("/dev/null is a character device, not a terminal")
	}
	parse := func(args ...string) replay.ProgressFlags {
		var f replay.ProgressFlags
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		f.Register(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return f
	}
	for _, c := range []struct {
		args []string
		show bool
	}{
		{nil, false}, // auto, no terminal
		{[]string{"--progress", "off"}, false},
		{[]string{"--quiet"}, false},
		{[]string{"--quiet", "--progress", "bar"}, false},
		{[]string{"--progress", "lines"}, true},
		{[]string{"--progress", "bar"}, true},
	} {
		f := parse(c.args...)
		p := f.New(&stdout, &stderr, "audit")
		p.SetClock(time.Now, 0) // every update drawn or written
		p.Start(1, 100)
		p.Update(100, 100)
		p.Finish()
		if (p != nil) != c.show || (stderr.Len() > 0) != c.show || stdout.Len() > 0 {
			t.Errorf("%q: progress %v, stderr %q, stdout %q", c.args, p != nil, stderr.String(), stdout.String())
		}
		stderr.Reset()
	}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(&stderr)
	var f replay.ProgressFlags
	f.Register(fs)
	if err := fs.Parse([]string{"--progress", "sometimes"}); err == nil {
		t.Error("--progress sometimes: no error")
	}
	if replay.NewProgress(&stderr, "x", replay.ProgressAuto) != nil {
		t.Error("auto on a buffer shows progress")
	}
}
