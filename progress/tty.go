package progress

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// ttyConfig is the geometry and styling of a tty display.
type ttyConfig struct {
	// width is the terminal width in columns.
	width int
	// height is the terminal height in lines; redraws never exceed it.
	height int
	// color enables ANSI colors.
	color bool
}

// Defaults when the terminal size is unknown.
const (
	defaultWidth  = 100
	defaultHeight = 40
)

// ttyConfigFromEnv reads COLUMNS, LINES and NO_COLOR.
func ttyConfigFromEnv() ttyConfig {
	return ttyConfig{
		width:  envInt("COLUMNS", defaultWidth),
		height: envInt("LINES", defaultHeight),
		color:  os.Getenv("NO_COLOR") == "",
	}
}

// envInt returns the positive integer in the environment variable k, or def.
func envInt(k string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(k)); err == nil && n > 0 {
		return n
	}
	return def
}

// ANSI sequences.
const (
	ansiRed       = "\x1b[31m"
	ansiReset     = "\x1b[0m"
	ansiEraseLine = "\x1b[2K"
	ansiEraseDown = "\x1b[J"
)

// tty redraws a block of lines: a header, then one line per vertex.
type tty struct {
	w     io.Writer
	vs    vertices
	start time.Time
	cfg   ttyConfig
	// lines is how many lines the last redraw printed.
	lines int
	dirty bool
}

// newTTY returns a tty renderer whose clock starts at start.
func newTTY(w io.Writer, start time.Time, cfg ttyConfig) *tty {
	cfg.width = max(cfg.width, 20)
	cfg.height = max(cfg.height, 3)
	return &tty{w: w, start: start, cfg: cfg}
}

func (t *tty) event(e Event, now time.Time) {
	if _, _, ok := t.vs.update(e, now); ok {
		t.dirty = true
	}
}

// tick redraws when something changed or a running vertex's clock moved.
func (t *tty) tick(now time.Time) {
	if t.dirty || t.running() > 0 {
		t.draw(now, false)
	}
}

// finish draws the full final block; it is never redrawn, so it may be
// taller than the terminal.
func (t *tty) finish(now time.Time) {
	t.draw(now, true)
}

// running counts the vertices not completed.
func (t *tty) running() int {
	n := 0
	for _, v := range t.vs.order {
		if !v.Done() {
			n++
		}
	}
	return n
}

// draw moves the cursor up over the last block and prints the new one.
func (t *tty) draw(now time.Time, final bool) {
	lines := t.render(now, final)
	var b strings.Builder
	if t.lines > 0 {
		fmt.Fprintf(&b, "\x1b[%dA\r", t.lines)
	}
	for _, l := range lines {
		b.WriteString(ansiEraseLine)
		b.WriteString(l)
		b.WriteByte('\n')
	}
	b.WriteString(ansiEraseDown)
	io.WriteString(t.w, b.String())
	t.lines = len(lines)
	t.dirty = false
}

// render returns the block: the header and the vertex lines, fitted to the
// terminal height unless final.
func (t *tty) render(now time.Time, final bool) []string {
	done, failed := 0, 0
	for _, v := range t.vs.order {
		if v.Done() {
			done++
		}
		if v.Error != "" {
			failed++
		}
	}
	header := fmt.Sprintf("[+] exporting %s (%d/%d)", seconds(now.Sub(t.start)), done, len(t.vs.order))
	if final {
		header += " FINISHED"
		if failed > 0 {
			header += fmt.Sprintf(", %d FAILED", failed)
		}
	}
	lines := []string{t.fit(header, "")}
	shown := t.vs.order
	hidden := 0
	if !final {
		shown, hidden = t.fitHeight(t.cfg.height - 2) // header, cursor line
	}
	if hidden > 0 {
		lines = append(lines, t.fit(fmt.Sprintf(" => ... %d completed", hidden), ""))
	}
	for _, v := range shown {
		lines = append(lines, t.vertexLines(v, now)...)
	}
	return lines
}

// fitHeight picks the vertices to show in at most n lines: completed
// successful vertices are hidden oldest first (counted in the returned
// number, which takes one line); then vertices beyond the limit are cut.
func (t *tty) fitHeight(n int) ([]*vertex, int) {
	cost := func(v *vertex) int {
		if v.Error != "" {
			return 2
		}
		return 1
	}
	total := 0
	for _, v := range t.vs.order {
		total += cost(v)
	}
	if total <= n {
		return t.vs.order, 0
	}
	var shown []*vertex
	hidden, budget := 0, total+1 // +1: the "completed" line
	for _, v := range t.vs.order {
		if budget > n && v.Done() && v.Error == "" {
			hidden++
			budget--
			continue
		}
		shown = append(shown, v)
	}
	used := min(hidden, 1)
	for i := range shown {
		used += cost(shown[i])
		if used > n {
			return shown[:i], hidden
		}
	}
	return shown, hidden
}

// vertexLines renders one vertex: one line, plus the message when failed.
func (t *tty) vertexLines(v *vertex, now time.Time) []string {
	var parts []string
	if bp := byteProgress(v.Current, v.Total); bp != "" {
		parts = append(parts, bp)
	}
	d := v.elapsed(now)
	switch {
	case v.Error != "":
		parts = append(parts, "ERROR")
	case v.Done():
		parts = append(parts, orDefault(oneLine(v.Status), "done"))
	case v.Current > 0 && d >= 100*time.Millisecond:
		parts = append(parts, HumanBytes(int64(float64(v.Current)/d.Seconds()))+"/s")
	}
	parts = append(parts, fmt.Sprintf("%6s", seconds(d)))
	line := t.fit(" => "+v.name(), strings.Join(parts, "  "))
	if v.Error == "" {
		return []string{line}
	}
	msg := truncate("    error: "+oneLine(v.Error), t.cfg.width-1)
	return []string{t.red(line), t.red(msg)}
}

// fit lays out left and right on one line narrower than the terminal:
// left is truncated or padded so right ends at the right edge.
func (t *tty) fit(left, right string) string {
	w := t.cfg.width - 1
	if right == "" {
		return truncate(left, w)
	}
	room := w - len([]rune(right)) - 2
	if room < 10 {
		return truncate(left+"  "+right, w)
	}
	left = truncate(left, room)
	pad := room - len([]rune(left))
	return left + strings.Repeat(" ", pad+2) + right
}

// red colors s when colors are on.
func (t *tty) red(s string) string {
	if !t.cfg.color {
		return s
	}
	return ansiRed + s + ansiReset
}

// orDefault returns s, or def when s is empty.
func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
