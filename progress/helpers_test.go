package progress

import (
	"bytes"
	"strings"
	"sync"
	"time"
)

// base is the fake clock's zero.
var base = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// at returns base plus ms milliseconds.
func at(ms int) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }

// fakeClock is a settable clock for displays.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// step is one scripted event and the display time it arrives at.
type step struct {
	ms int
	e  Event
}

// script is a sequence of events over three vertices: a layer that moves
// bytes and completes as new, a config that completes without bytes, and a
// push whose first event is already a failure; a stale update arrives last.
var script = []step{
	{0, Event{ID: "a", Name: "layer one", Started: at(0), Total: 45_600_000}},
	{100, Event{ID: "b", Name: "config", Started: at(100)}},
	{500, Event{ID: "a", Name: "layer one", Started: at(0), Total: 45_600_000, Current: 1_000_000}},
	{1200, Event{ID: "a", Name: "layer one", Started: at(0), Total: 45_600_000, Current: 12_300_000}},
	{1300, Event{ID: "a", Name: "layer one", Started: at(0), Total: 45_600_000, Current: 13_000_000}},
	{1400, Event{ID: "b", Name: "config", Started: at(100), Completed: at(1400)}},
	{2000, Event{ID: "c", Name: "push", Started: at(1900), Completed: at(2000), Error: "boom\nsecond line"}},
	{2500, Event{ID: "a", Name: "layer one", Started: at(0), Total: 45_600_000, Current: 45_600_000, Completed: at(2500), Status: "new"}},
	{2600, Event{ID: "a", Name: "layer one", Started: at(0), Total: 45_600_000, Current: 13_000_000}},
}

// play runs script through a display in mode and returns its output after
// Close. Ticks never fire on their own.
func play(mode Mode, cfg ttyConfig) (string, *Display, error) {
	clk := &fakeClock{t: base}
	var buf bytes.Buffer
	d := newDisplay(mode, &buf, clk.now, cfg, time.Hour)
	for _, s := range script {
		clk.set(at(s.ms))
		d.Write(s.e)
	}
	clk.set(at(3000))
	err := d.Close()
	return buf.String(), d, err
}

// lockedBuffer is a bytes.Buffer safe to read while a display writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// stripANSI removes the escape sequences a tty display writes.
func stripANSI(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\x1b' {
			b.WriteByte(s[i])
			continue
		}
		for i++; i < len(s) && !(s[i] >= 'A' && s[i] <= 'Z' || s[i] >= 'a' && s[i] <= 'z'); i++ {
		}
	}
	return b.String()
}
