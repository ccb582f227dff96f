package replay

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// ProgressMode says how progress is shown.
type ProgressMode int

// Progress modes.
const (
	ProgressAuto  ProgressMode = iota // a bar on a terminal, lines otherwise
	ProgressBar                       // a bar redrawn in place with \r
	ProgressLines                     // a plain line every Every
	ProgressOff
)

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

// IsTerminal reports whether w is a terminal (a character device).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Progress shows how a long replay advances: position in the stream, rate
// (messages and events per second), and the time left at that rate. On a
// terminal it redraws one bar; otherwise it writes a plain line now and then.
// It reads the wall clock for rates only; nothing it does changes a result.
// A nil *Progress does nothing.
type Progress struct {
	w     io.Writer
	label string
	bar   bool
	every time.Duration
	now   func() time.Time

	mu        sync.Mutex
	from, to  uint64
	pos       uint64
	msgs      int64
	events    int64
	started   time.Time
	lastShown time.Time
	shown     bool
}

// NewProgress returns a progress display on w for mode. With ProgressOff it
// returns nil, which is a valid *Progress that shows nothing.
func NewProgress(w io.Writer, label string, mode ProgressMode) *Progress {
	if mode == ProgressOff || w == nil {
		return nil
	}
	bar := mode == ProgressBar || (mode == ProgressAuto && IsTerminal(w))
	p := &Progress{w: w, label: label, bar: bar, every: 5 * time.Second, now: time.Now}
	if bar {
		p.every = 200 * time.Millisecond
	}
	return p
}

// SetClock replaces the clock and the interval between two displays (tests).
func (p *Progress) SetClock(now func() time.Time, every time.Duration) {
	if p == nil {
		return
	}
	p.now, p.every = now, every
}

// Start begins a replay of sequences from..to.
func (p *Progress) Start(from, to uint64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.from, p.to, p.pos = from, to, from-1
	p.msgs, p.events = 0, 0
	p.started = p.now()
	p.lastShown = p.started
	p.shown = false
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
	now := p.now()
	if now.Sub(p.lastShown) < p.every {
		return
	}
	p.lastShown = now
	p.show(now, false)
}

// Finish shows the final state (and ends the bar's line).
func (p *Progress) Finish() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.shown && p.msgs == 0 {
		return
	}
	p.show(p.now(), true)
}

// Line returns the text shown for the current state (without bar or \r).
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

func (p *Progress) show(now time.Time, final bool) {
	p.shown = true
	text := p.line(now, final)
	if !p.bar {
		fmt.Fprintln(p.w, text)
		return
	}
	const width = 30
	frac := 1.0
	if p.to >= p.from && p.to > 0 {
		frac = (float64(p.pos) - float64(p.from) + 1) / (float64(p.to) - float64(p.from) + 1)
	}
	frac = max(0, min(frac, 1))
	n := int(frac * width)
	bar := strings.Repeat("=", n)
	if n < width {
		bar += ">" + strings.Repeat(" ", width-n-1)
	}
	end := ""
	if final {
		end = "\n"
	}
	// \r and erase-to-end-of-line redraw the bar in place.
	fmt.Fprintf(p.w, "\r[%s] %s\x1b[K%s", bar, text, end)
}
