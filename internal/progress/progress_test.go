package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// fakeClock returns a meter on buf whose clock moves by step at each call.
func fakeClock(buf *bytes.Buffer, tty bool, total int, step time.Duration) *Meter {
	m := New(buf, total, "encoding", "images")
	m.tty = tty
	t := m.start
	m.now = func() time.Time { t = t.Add(step); return t }
	return m
}

func TestPlainLinesOffATerminal(t *testing.T) {
	var buf bytes.Buffer
	m := fakeClock(&buf, false, 1000, 3*time.Second) // a line every 4th update (Interval 10 s)
	for done := 10; done <= 1000; done += 10 {
		m.Set(done)
	}
	m.Finish()
	out := buf.String()
	if strings.Contains(out, "\r") {
		t.Fatalf("a carriage return off a terminal: %q", out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 20 || len(lines) > 30 {
		t.Errorf("%d lines for 100 updates 3 s apart, want one each 10 s and one at the end", len(lines))
	}
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "encoding: 1000 images in 5m3s") || !strings.Contains(last, "images/s") {
		t.Errorf("last line %q", last)
	}
}

func TestNoRateTooEarly(t *testing.T) {
	var buf bytes.Buffer
	m := fakeClock(&buf, true, 60000, time.Millisecond*250)
	m.Set(1000) // 0.25 s in: no rate yet
	if strings.Contains(buf.String(), "/s") {
		t.Errorf("a rate 0.25 s in: %q", buf.String())
	}
	for done := 2000; done <= 60000; done += 1000 {
		m.Set(done)
	}
	if !strings.Contains(buf.String(), "images/s") || !strings.Contains(buf.String(), "\r") {
		t.Errorf("on a terminal: %q", buf.String())
	}
	var zero bytes.Buffer
	z := fakeClock(&zero, false, 10, 20*time.Second)
	z.Set(0)
	if strings.Contains(zero.String(), "0 images/s") {
		t.Errorf("a rate of nothing: %q", zero.String())
	}
}

func TestNilMeter(t *testing.T) {
	var m *Meter
	m.Set(3)
	m.Describe("x")
	m.Finish()
	if New(nil, 3, "x", "y") != nil {
		t.Error("New(nil) is not nil")
	}
}
