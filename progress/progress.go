// Package progress carries typed progress events from lade's export pipeline
// to whoever renders them. It imports no other lade package.
//
// Every step of an export (one layer's diff and compression, writing a
// config, a manifest, an index, pushing a blob) is a vertex identified by ID.
// A producer sends an Event when the vertex starts, zero or more while bytes
// move, and one when it completes (with Error set if it failed).
//
// A Display renders events for people or programs in one of the Modes
// buildctl offers (auto, tty, plain, rawjson, quiet).
package progress

import (
	"sync"
	"time"
)

// Event is one update about one vertex of an export.
type Event struct {
	// ID identifies the vertex; all events about one step share it.
	ID string `json:"id"`
	// Name is the human-readable name, e.g. "layer sha256:ab12… (gzip)".
	Name string `json:"name"`
	// Started is when the vertex started; zero until then.
	Started time.Time `json:"started,omitzero"`
	// Completed is when the vertex ended; zero while running.
	Completed time.Time `json:"completed,omitzero"`
	// Current is the number of bytes (or units) done so far.
	Current int64 `json:"current,omitempty"`
	// Total is the expected total, 0 when unknown.
	Total int64 `json:"total,omitempty"`
	// Status is a short word about the outcome: "new", "reused", "empty",
	// "pushed", "exists", "mounted"...
	Status string `json:"status,omitempty"`
	// Error is set on a completed vertex that failed.
	Error string `json:"error,omitempty"`
}

// Done reports whether the event completes its vertex.
func (e Event) Done() bool { return !e.Completed.IsZero() }

// Writer receives events. Implementations must be safe for concurrent use and
// must not block for long: producers call Write on their hot path.
type Writer interface {
	Write(Event)
}

// WriterFunc adapts a function to Writer.
type WriterFunc func(Event)

// Write calls f(e).
func (f WriterFunc) Write(e Event) { f(e) }

// Discard is a Writer that drops every event.
var Discard Writer = WriterFunc(func(Event) {})

// OrDiscard returns w, or Discard when w is nil.
func OrDiscard(w Writer) Writer {
	if w == nil {
		return Discard
	}
	return w
}

// Multi returns a Writer that forwards each event to every writer in ws, in
// order. Nil writers are skipped; ws is copied, so later changes to the
// caller's slice have no effect.
func Multi(ws ...Writer) Writer {
	all := make([]Writer, 0, len(ws))
	for _, w := range ws {
		if w != nil {
			all = append(all, w)
		}
	}
	return WriterFunc(func(e Event) {
		for _, w := range all {
			w.Write(e)
		}
	})
}

// Recorder is a Writer that keeps every event, for tests and result reports.
type Recorder struct {
	mu     sync.Mutex
	events []Event
}

// Write records e.
func (r *Recorder) Write(e Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

// Events returns a copy of the recorded events in arrival order.
func (r *Recorder) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

// Task is a helper for one vertex: it stamps Started once and Completed on
// Done, and throttles byte updates. Its methods are safe for concurrent use.
// Events are written while the Task's lock is held, so they reach the Writer
// in order (a throttled update never arrives after the completion); the
// Writer must therefore not call back into the same Task.
type Task struct {
	w     Writer
	ev    Event
	mu    sync.Mutex
	last  time.Time
	every time.Duration
}

// taskInterval is the minimum time between two byte updates of a Task.
const taskInterval = 100 * time.Millisecond

// Start sends the started event for a new vertex and returns its Task. A nil
// w is Discard.
func Start(w Writer, id, name string, total int64) *Task {
	t := &Task{w: OrDiscard(w), every: taskInterval}
	t.ev = Event{ID: id, Name: name, Started: time.Now(), Total: total}
	t.w.Write(t.ev)
	return t
}

// Add advances the vertex by n units; updates are sent at most every 100ms
// (the first Add sends at once). Add after Done does nothing.
func (t *Task) Add(n int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ev.Done() {
		return
	}
	t.ev.Current += n
	now := time.Now()
	if now.Sub(t.last) < t.every {
		return
	}
	t.last = now
	t.w.Write(t.ev)
}

// SetTotal changes the expected total; it is sent with the next update.
func (t *Task) SetTotal(total int64) {
	t.mu.Lock()
	t.ev.Total = total
	t.mu.Unlock()
}

// Done completes the vertex with a status word, or with err when non-nil,
// and always sends the completed event (with the final Current), however
// recent the last update. Done is idempotent: only the first call sends.
func (t *Task) Done(status string, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ev.Done() {
		return
	}
	t.ev.Completed = time.Now()
	t.ev.Status = status
	if err != nil {
		t.ev.Error = err.Error()
	}
	t.w.Write(t.ev)
}

// OneOff sends a started and a completed event for a step without bytes.
func OneOff(w Writer, id, name string, err error) {
	Start(w, id, name, 0).Done("", err)
}
