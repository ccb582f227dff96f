package replay_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/ledgerworks/ledger/replay"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestProgressLines(t *testing.T) {
	var out bytes.Buffer
	p := replay.NewProgress(&out, "rebuild", replay.ProgressAuto) // a buffer is no terminal: lines
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

func TestProgressBar(t *testing.T) {
	var out bytes.Buffer
	p := replay.NewProgress(&out, "report", replay.ProgressBar)
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	p.SetClock(clk.now, 0)
	p.Start(1, 100)
	clk.t = clk.t.Add(time.Second)
	p.Update(50, 50)
	if got := out.String(); !strings.HasPrefix(got, "\r[===============>              ] report: seq 50/100 (50.0%)") || strings.Contains(got, "\n") {
		t.Fatalf("bar %q", got)
	}
	p.Finish()
	if !strings.HasSuffix(out.String(), "\n") {
		t.Fatalf("the bar's line is not ended: %q", out.String())
	}
	var none *replay.Progress = replay.NewProgress(&out, "x", replay.ProgressOff)
	none.Start(1, 2)
	none.Update(2, 2)
	none.Finish() // a nil progress does nothing
	if replay.IsTerminal(&out) {
		t.Fatal("a buffer is not a terminal")
	}
}
