// Package progress reports the progress of long work on a terminal or in a
// log, for the command line.
//
// On a terminal, a Meter redraws one line in place (a carriage return, at
// most five times a second). Anywhere else (stderr piped to a file, a CI
// log) it never redraws: it prints a plain line every Interval, and one when
// the work is done, as Keras's verbose=2 does. Either way a rate is shown
// only once it means something: after a second of work and at least one
// update, never "0 images/s" or a burst's millions.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// Interval is how often a Meter writes a plain line when its writer is not
// a terminal.
var Interval = 10 * time.Second

// minRateTime is the least work time after which a rate is shown.
const minRateTime = time.Second

// Meter reports the progress of total units of work (images, samples). Its
// methods may be called from one goroutine at a time; a nil Meter does
// nothing.
type Meter struct {
	mu       sync.Mutex
	w        io.Writer
	tty      bool
	what     string
	unit     string
	total    int
	done     int
	start    time.Time
	last     time.Time // of the last line written
	width    int       // of the last terminal line, to clear it
	finished bool
	now      func() time.Time
}

// New returns a meter that writes to w, or nil (which reports nothing)
// when w is nil. what names the work ("encoding mnist train"), unit its
// units ("images"). w is a terminal when it is an *os.File on one.
func New(w io.Writer, total int, what, unit string) *Meter {
	if w == nil {
		return nil
	}
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	now := time.Now()
	return &Meter{w: w, tty: tty, what: what, unit: unit, total: total, start: now, last: now, now: time.Now}
}

// Describe changes what the work is called, for the next line.
func (m *Meter) Describe(what string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.what = what
	m.mu.Unlock()
}

// Set records that done units of the total are done, and writes a line if
// it is time to.
func (m *Meter) Set(done int) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.done = done
	t := m.now()
	switch {
	case m.tty && t.Sub(m.last) >= 200*time.Millisecond:
		m.redraw(t)
	case !m.tty && t.Sub(m.last) >= Interval:
		fmt.Fprintln(m.w, m.line(t))
		m.last = t
	}
}

// Add records that n more units are done; see Set.
func (m *Meter) Add(n int) {
	if m == nil {
		return
	}
	m.mu.Lock()
	done := m.done + n
	m.mu.Unlock()
	m.Set(done)
}

// Finish writes the final line: the units done, the time taken and the rate.
func (m *Meter) Finish() {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.finished {
		return
	}
	m.finished = true
	t := m.now()
	line := fmt.Sprintf("%s: %d %s in %s", m.what, m.done, m.unit, t.Sub(m.start).Round(10*time.Millisecond))
	if el := t.Sub(m.start); el > 0 && m.done > 0 { // the whole work's rate means something
		line += fmt.Sprintf(" (%.0f %s/s)", float64(m.done)/el.Seconds(), m.unit)
	}
	if m.tty {
		fmt.Fprintf(m.w, "\r%-*s\n", m.width, line)
		return
	}
	fmt.Fprintln(m.w, line)
}

func (m *Meter) redraw(t time.Time) {
	line := m.line(t)
	fmt.Fprintf(m.w, "\r%-*s", m.width, line)
	m.width = max(m.width, len(line))
	m.last = t
}

// line is "what: done/total (p%), rate".
func (m *Meter) line(t time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d/%d %s", m.what, m.done, m.total, m.unit)
	if m.total > 0 {
		fmt.Fprintf(&b, " (%d%%)", 100*m.done/m.total)
	}
	if r := m.rate(t); r != "" {
		fmt.Fprintf(&b, ", %s", r)
		if left := m.total - m.done; left > 0 && m.done > 0 {
			eta := time.Duration(float64(t.Sub(m.start)) * float64(left) / float64(m.done))
			fmt.Fprintf(&b, ", %s left", eta.Round(time.Second))
		}
	}
	return b.String()
}

// rate is "N units/s" once the work has run for minRateTime and done some
// units, else "".
func (m *Meter) rate(t time.Time) string {
	el := t.Sub(m.start)
	if el < minRateTime || m.done <= 0 {
		return ""
	}
	return fmt.Sprintf("%.0f %s/s", float64(m.done)/el.Seconds(), m.unit)
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
