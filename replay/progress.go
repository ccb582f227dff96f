package replay

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// ProgressMode says how progress is shown.
type ProgressMode int

// Progress modes.
const (
	// ProgressAuto shows a bar when the progress's writer and standard
	// output are both terminals, and nothing otherwise: output redirected
	// to a file or a pipe, or a run from a script, gets no extra lines.
	ProgressAuto  ProgressMode = iota
	ProgressBar                // a bar redrawn in place, whatever the writer is
	ProgressLines              // a plain line every 5 seconds, for logs
	ProgressOff
)

var progressModes = []string{ProgressAuto: "auto", ProgressBar: "bar", ProgressLines: "lines", ProgressOff: "off"}

// ParseProgressMode reads auto, bar, lines (or plain) and off (or none).
func ParseProgressMode(s string) (ProgressMode, error) {
	switch s {
	case "", "auto":
		return ProgressAuto, nil
	case "bar":
		return ProgressBar, nil
	case "lines", "plain":
		return ProgressLines, nil
	case "off", "none":
		return ProgressOff, nil
	}
	return 0, fmt.Errorf("progress %q: use auto, bar, lines or off", s)
}

// String is the mode's name.
func (m ProgressMode) String() string {
	if m < 0 || int(m) >= len(progressModes) {
		return fmt.Sprintf("ProgressMode(%d)", int(m))
	}
	return progressModes[m]
}

// Set parses s into m (m is a flag.Value).
func (m *ProgressMode) Set(s string) error {
	mode, err := ParseProgressMode(s)
	if err != nil {
		return err
	}
	*m = mode
	return nil
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// ProgressFlags are the --progress and --quiet flags of the commands that
// replay the stream.
type ProgressFlags struct {
	Mode  ProgressMode
	Quiet bool
}

// Register adds --progress and --quiet to fs.
func (f *ProgressFlags) Register(fs *flag.FlagSet) {
	fs.Var(&f.Mode, "progress", "progress on stderr, a `mode`: auto (a bar when stdout and stderr are both terminals, nothing otherwise), bar, lines (a line every 5s, for logs) or off")
	fs.BoolVar(&f.Quiet, "quiet", false, "show no progress, whatever --progress says")
}

// New returns the progress display of a command that writes its results to
// stdout and its progress to stderr: nil, which shows nothing, with --quiet,
// with --progress off, and with auto unless stdout and stderr are both
// terminals.
func (f *ProgressFlags) New(stdout, stderr io.Writer, label string) *Progress {
	if f.Quiet || (f.Mode == ProgressAuto && !(IsTerminal(stdout) && IsTerminal(stderr))) {
		return nil
	}
	return NewProgress(stderr, label, f.Mode)
}

// Progress shows how a long replay advances: the stream sequences done of
// those to read, the rate, and the time left at that rate. As a bar
// (github.com/schollz/progressbar) redrawn in place on a terminal, or as a
// plain line every 5 seconds. It reads the wall clock for rates only;
// nothing it does changes a result. A nil *Progress does nothing.
type Progress struct {
	w     io.Writer
	label string
	bar   bool
	every time.Duration // between two lines
	// redraw is the least time between two draws of the bar.
	redraw time.Duration
	now    func() time.Time

	mu        sync.Mutex
	from, to  uint64
	pos       uint64
	msgs      int64
	events    int64
	started   time.Time
	lastShown time.Time
	shown     bool
	pb        *progressbar.ProgressBar // the bar of the current replay, if any
}

// NewProgress returns a progress display on w for mode: nil, a valid
// *Progress that shows nothing, for ProgressOff, and for ProgressAuto unless
// w and os.Stdout are both terminals (ProgressFlags.New decides with the
// command's own stdout).
func NewProgress(w io.Writer, label string, mode ProgressMode) *Progress {
	if mode == ProgressAuto && IsTerminal(w) && IsTerminal(os.Stdout) {
		mode = ProgressBar
	}
	if w == nil || (mode != ProgressBar && mode != ProgressLines) {
		return nil
	}
	return &Progress{w: w, label: label, bar: mode == ProgressBar, every: 5 * time.Second, redraw: 100 * time.Millisecond, now: time.Now}
}

// SetClock replaces the clock and the interval between two lines, which
// is also the least time between two draws of the bar (tests; the bar
// keeps its own clock for rates).
func (p *Progress) SetClock(now func() time.Time, every time.Duration) {
	if p == nil {
		return
	}
	p.now, p.every, p.redraw = now, every, every
}

// Start begins a replay of sequences from..to.
func (p *Progress) Start(from, to uint64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.endBar()
	p.from, p.to, p.pos = from, to, from-1
	p.msgs, p.events = 0, 0
	p.started = p.now()
	p.lastShown = p.started
	p.shown = false
	if p.bar && to >= from {
		w := p.w
		p.pb = progressbar.NewOptions64(int64(to-from+1),
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(p.label),
			progressbar.OptionSetWidth(30),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("msg"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionThrottle(p.redraw),
			progressbar.OptionUseANSICodes(true),
			progressbar.OptionSetRenderBlankState(true),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		)
	}
}

// Update says the replay has read through seq, msgs more messages.
func (p *Progress) Update(seq uint64, msgs int64) {
	p.Add(seq, msgs, 0)
}

// Add says the replay has read through seq: msgs more messages holding
// events more events.
func (p *Progress) Add(seq uint64, msgs, events int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pos, p.msgs, p.events = seq, p.msgs+msgs, p.events+events
	if p.bar {
		if p.pb != nil {
			done := min(max(seq, p.from-1), p.to) - (p.from - 1)
			p.pb.Set64(int64(done))
		}
		return
	}
	now := p.now()
	if now.Sub(p.lastShown) < p.every {
		return
	}
	p.lastShown = now
	p.shown = true
	fmt.Fprintln(p.w, p.line(now, false))
}

// Finish shows the final state: it ends the bar's line where the replay
// stopped (full when it read everything), or writes a last line.
func (p *Progress) Finish() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar {
		p.endBar()
		return
	}
	if !p.shown && p.msgs == 0 {
		return
	}
	p.shown = true
	fmt.Fprintln(p.w, p.line(p.now(), true))
}

// endBar leaves the current bar as it stands, its line ended.
func (p *Progress) endBar() {
	if p.pb != nil && !p.pb.IsFinished() {
		p.pb.Exit()
	}
	p.pb = nil
}

// Line returns the text of a line for the current state.
func (p *Progress) Line() string {
	if p == nil {
		return ""
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.line(p.now(), false)
}

func (p *Progress) line(now time.Time, final bool) string {
	elapsed := now.Sub(p.started)
	var b strings.Builder
	fmt.Fprintf(&b, "%s: seq %d/%d", p.label, p.pos, p.to)
	total := float64(p.to) - float64(p.from) + 1
	done := float64(p.pos) - float64(p.from) + 1
	if total > 0 {
		fmt.Fprintf(&b, " (%.1f%%)", 100*max(0, min(done, total))/total)
	}
	rate := 0.0
	if elapsed > 0 {
		rate = float64(p.msgs) / elapsed.Seconds()
	}
	fmt.Fprintf(&b, ", %d msgs, %.0f msg/s", p.msgs, rate)
	if p.events > 0 && elapsed > 0 {
		fmt.Fprintf(&b, ", %.0f events/s", float64(p.events)/elapsed.Seconds())
	}
	if final {
		fmt.Fprintf(&b, ", done in %s", elapsed.Round(time.Millisecond))
	} else if rate > 0 && p.pos < p.to {
		left := time.Duration(float64(p.to-p.pos) / rate * float64(time.Second))
		fmt.Fprintf(&b, ", ETA %s", left.Round(time.Second))
	}
	return b.String()
}
