package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// Mode selects how a Display renders events, like buildctl's --progress.
type Mode string

// The display modes.
const (
	// ModeAuto is ModeTTY when the output is a terminal, else ModePlain.
	ModeAuto Mode = "auto"
	// ModeTTY redraws a block of lines, one per vertex, about 10 times a second.
	ModeTTY Mode = "tty"
	// ModePlain prints timed, numbered lines as things happen.
	ModePlain Mode = "plain"
	// ModeRawJSON prints every event as one JSON object per line.
	ModeRawJSON Mode = "rawjson"
	// ModeQuiet prints nothing but, at Close, the errors of failed vertices.
	ModeQuiet Mode = "quiet"
)

// Modes returns the accepted modes in the order they are documented.
func Modes() []Mode {
	return []Mode{ModeAuto, ModeTTY, ModePlain, ModeRawJSON, ModeQuiet}
}

// ParseMode returns the Mode named s. Names are exact (lower case); anything
// else, including "", is an error listing the accepted names.
func ParseMode(s string) (Mode, error) {
	names := make([]string, 0, len(Modes()))
	for _, m := range Modes() {
		if s == string(m) {
			return m, nil
		}
		names = append(names, string(m))
	}
	return "", fmt.Errorf("parse progress mode %q: must be one of %s", s, strings.Join(names, ", "))
}

// renderer draws events for one mode. Its methods are called with the
// Display's lock held, never after finish.
type renderer interface {
	// event takes one event at display time now.
	event(e Event, now time.Time)
	// finish flushes and ends the rendering.
	finish(now time.Time)
}

// ticker is a renderer that redraws periodically.
type ticker interface {
	renderer
	tick(now time.Time)
}

// refreshInterval is how often a tty display redraws at most.
const refreshInterval = 100 * time.Millisecond

// Display renders events to an io.Writer in one Mode. It is a Writer, safe
// for concurrent use. Close must be called once the producers are done: it
// stops the redraw goroutine of a tty display and prints the final state.
// Events written after Close are dropped.
type Display struct {
	mode Mode
	now  func() time.Time
	out  *stickyWriter

	mu     sync.Mutex
	r      renderer
	closed bool

	once sync.Once
	stop chan struct{}
	done chan struct{}
}

// NewDisplay returns a Display rendering to out in mode (ModeAuto is
// resolved here). The error is for an unknown mode or a nil out.
func NewDisplay(mode Mode, out io.Writer) (*Display, error) {
	if _, err := ParseMode(string(mode)); err != nil {
		return nil, fmt.Errorf("new display: %w", err)
	}
	if out == nil {
		return nil, fmt.Errorf("new display: nil output")
	}
	if mode == ModeAuto {
		mode = ModePlain
		if isTerminal(out) {
			mode = ModeTTY
		}
	}
	return newDisplay(mode, out, time.Now, ttyConfigFromEnv(), refreshInterval), nil
}

// newDisplay builds a Display for a resolved mode; tests inject the clock,
// the terminal geometry and the refresh interval.
func newDisplay(mode Mode, out io.Writer, now func() time.Time, cfg ttyConfig, every time.Duration) *Display {
	d := &Display{mode: mode, now: now, out: &stickyWriter{w: out}}
	start := now()
	switch mode {
	case ModeTTY:
		t := newTTY(d.out, start, cfg)
		d.r = t
		d.stop, d.done = make(chan struct{}), make(chan struct{})
		go d.loop(t, every)
	case ModePlain:
		d.r = &plain{w: d.out}
	case ModeRawJSON:
		d.r = &rawJSON{w: d.out}
	default:
		d.r = &quiet{w: d.out}
	}
	return d
}

// Mode returns the resolved mode (never ModeAuto).
func (d *Display) Mode() Mode { return d.mode }

// Write renders e (or records it for the next redraw).
func (d *Display) Write(e Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.closed {
		d.r.event(e, d.now())
	}
}

// Close stops any redraw goroutine, finishes the rendering (the final block
// in tty mode, the errors in quiet mode) and returns the first error met
// writing to the output. It is idempotent and safe to call concurrently.
func (d *Display) Close() error {
	d.once.Do(func() {
		if d.stop != nil {
			close(d.stop)
			<-d.done
		}
		d.mu.Lock()
		d.closed = true
		d.r.finish(d.now())
		d.mu.Unlock()
	})
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.err
}

// loop redraws t every interval until Close.
func (d *Display) loop(t ticker, every time.Duration) {
	defer close(d.done)
	tk := time.NewTicker(every)
	defer tk.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-tk.C:
			d.mu.Lock()
			if !d.closed {
				t.tick(d.now())
			}
			d.mu.Unlock()
		}
	}
}

// isTerminal reports whether out is a character device other than a dumb
// terminal.
func isTerminal(out io.Writer) bool {
	f, ok := out.(*os.File)
	if !ok || os.Getenv("TERM") == "dumb" {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// stickyWriter remembers the first write error and writes nothing after it.
type stickyWriter struct {
	w   io.Writer
	err error
}

// Write writes p unless an earlier write failed.
func (s *stickyWriter) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.w.Write(p)
	if err != nil {
		s.err = fmt.Errorf("write progress: %w", err)
	}
	return n, s.err
}
