package progress

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// vertex is what a renderer knows of one vertex: the merged latest event.
type vertex struct {
	Event
	// n numbers vertices from 1 in order of first appearance.
	n int
	// seen is the display time of the first event.
	seen time.Time
	// lastLine is when plain mode last printed a line for it.
	lastLine time.Time
	// printed is the Current plain mode last printed.
	printed int64
}

// name returns the vertex name, or its ID when it has none, on one line.
func (v *vertex) name() string {
	if v.Name != "" {
		return oneLine(v.Name)
	}
	return oneLine(v.ID)
}

// started returns when the vertex started, or when it was first seen.
func (v *vertex) started() time.Time {
	if v.Started.IsZero() {
		return v.seen
	}
	return v.Started
}

// elapsed returns the vertex duration, up to now while it runs.
func (v *vertex) elapsed(now time.Time) time.Duration {
	if v.Done() {
		return v.Completed.Sub(v.started())
	}
	return now.Sub(v.started())
}

// vertices tracks vertices by ID in order of first appearance.
type vertices struct {
	byID  map[string]*vertex
	order []*vertex
}

// update merges e into its vertex. It returns the vertex, whether e was its
// first event, and false when e was dropped because the vertex had already
// completed (a stale or repeated event).
func (vs *vertices) update(e Event, now time.Time) (*vertex, bool, bool) {
	v, ok := vs.byID[e.ID]
	if !ok {
		if vs.byID == nil {
			vs.byID = map[string]*vertex{}
		}
		v = &vertex{Event: e, n: len(vs.order) + 1, seen: now}
		vs.byID[e.ID] = v
		vs.order = append(vs.order, v)
		return v, true, true
	}
	if v.Done() {
		return v, false, false
	}
	name, started := v.Name, v.Started
	v.Event = e
	if e.Name == "" {
		v.Name = name
	}
	if e.Started.IsZero() || (!started.IsZero() && started.Before(e.Started)) {
		v.Started = started
	}
	return v, false, true
}

// plain prints one line per happening, buildctl style.
type plain struct {
	w  io.Writer
	vs vertices
}

func (p *plain) event(e Event, now time.Time) {
	v, first, ok := p.vs.update(e, now)
	if !ok {
		return
	}
	if first {
		fmt.Fprintf(p.w, "#%d %s\n", v.n, v.name())
		v.lastLine = now
	}
	if v.Done() {
		if v.Current > 0 && v.Current != v.printed {
			p.bytes(v, v.elapsed(now))
		}
		if v.Error != "" {
			fmt.Fprintf(p.w, "#%d ERROR: %s\n", v.n, oneLine(v.Error))
			return
		}
		status := ""
		if v.Status != "" {
			status = " (" + oneLine(v.Status) + ")"
		}
		fmt.Fprintf(p.w, "#%d DONE %s%s\n", v.n, seconds(v.elapsed(now)), status)
		return
	}
	if v.Current != v.printed && now.Sub(v.lastLine) >= time.Second {
		p.bytes(v, v.elapsed(now))
		v.lastLine = now
	}
}

// bytes prints the byte progress line of v.
func (p *plain) bytes(v *vertex, d time.Duration) {
	fmt.Fprintf(p.w, "#%d %s %s\n", v.n, byteProgress(v.Current, v.Total), seconds(d))
	v.printed = v.Current
}

func (p *plain) finish(time.Time) {}

// rawJSON prints each event as one JSON object per line.
type rawJSON struct {
	w io.Writer
}

func (r *rawJSON) event(e Event, _ time.Time) {
	b, err := json.Marshal(e)
	if err != nil { // cannot happen for Event; keep the stream line-aligned
		return
	}
	r.w.Write(append(b, '\n'))
}

func (r *rawJSON) finish(time.Time) {}

// quiet prints, at the end, one line per failed vertex.
type quiet struct {
	w  io.Writer
	vs vertices
}

func (q *quiet) event(e Event, now time.Time) { q.vs.update(e, now) }

func (q *quiet) finish(time.Time) {
	for _, v := range q.vs.order {
		if v.Error != "" {
			fmt.Fprintf(q.w, "ERROR: %s: %s\n", v.name(), oneLine(v.Error))
		}
	}
}
