package progress

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseMode(t *testing.T) {
	tests := []struct {
		in      string
		want    Mode
		wantErr bool
	}{
		{"auto", ModeAuto, false},
		{"tty", ModeTTY, false},
		{"plain", ModePlain, false},
		{"rawjson", ModeRawJSON, false},
		{"quiet", ModeQuiet, false},
		{"", "", true},
		{"PLAIN", "", true},
		{"json", "", true},
		{" tty", "", true},
	}
	for _, tt := range tests {
		got, err := ParseMode(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("ParseMode(%q) = %q, %v", tt.in, got, err)
		}
		if err != nil && !strings.Contains(err.Error(), "auto, tty, plain, rawjson, quiet") {
			t.Errorf("ParseMode(%q) error %q does not list the modes", tt.in, err)
		}
	}
}

func TestNewDisplay(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tests := []struct {
		name    string
		mode    Mode
		out     any
		want    Mode
		wantErr bool
	}{
		{"auto buffer is plain", ModeAuto, &bytes.Buffer{}, ModePlain, false},
		{"auto regular file is plain", ModeAuto, f, ModePlain, false},
		{"tty forced", ModeTTY, &bytes.Buffer{}, ModeTTY, false},
		{"rawjson", ModeRawJSON, &bytes.Buffer{}, ModeRawJSON, false},
		{"quiet", ModeQuiet, &bytes.Buffer{}, ModeQuiet, false},
		{"bad mode", Mode("fancy"), &bytes.Buffer{}, "", true},
		{"nil out", ModePlain, nil, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out *bytes.Buffer
			var d *Display
			var err error
			switch o := tt.out.(type) {
			case *os.File:
				d, err = NewDisplay(tt.mode, o)
			case *bytes.Buffer:
				out = o
				d, err = NewDisplay(tt.mode, o)
			default:
				d, err = NewDisplay(tt.mode, nil)
			}
			if (err != nil) != tt.wantErr {
				t.Fatalf("NewDisplay: %v", err)
			}
			if err != nil {
				return
			}
			if d.Mode() != tt.want {
				t.Errorf("mode %q, want %q", d.Mode(), tt.want)
			}
			if err := d.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if err := d.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			if out != nil && tt.want != ModeTTY && out.Len() != 0 {
				t.Errorf("empty display wrote %q", out)
			}
		})
	}
}

func TestPlainOutput(t *testing.T) {
	out, _, err := play(ModePlain, ttyConfig{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"#1 layer one",
		"#2 config",
		"#1 12.3MB / 45.6MB 1.2s", // the 0.5s update is throttled, so is the 1.3s one
		"#2 DONE 1.3s",
		"#3 push",
		"#3 ERROR: boom second line",
		"#1 45.6MB / 45.6MB 2.5s",
		"#1 DONE 2.5s (new)", // the stale update after it is dropped
	}
	if got := strings.Split(strings.TrimSuffix(out, "\n"), "\n"); !reflect.DeepEqual(got, want) {
		t.Errorf("plain output:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestRawJSONRoundTrip(t *testing.T) {
	out, _, err := play(ModeRawJSON, ttyConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var got []Event
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		got = append(got, e)
	}
	if len(got) != len(script) {
		t.Fatalf("%d lines for %d events", len(got), len(script))
	}
	for i, s := range script {
		if !reflect.DeepEqual(got[i], s.e) {
			t.Errorf("line %d decodes to %+v, want %+v", i, got[i], s.e)
		}
	}
}

func TestQuietPrintsOnlyErrorsAtClose(t *testing.T) {
	out, _, err := play(ModeQuiet, ttyConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if want := "ERROR: push: boom second line\n"; out != want {
		t.Errorf("quiet output %q, want %q", out, want)
	}
}

func TestTTYFinalState(t *testing.T) {
	out, d, err := play(ModeTTY, ttyConfig{width: 60, height: 20, color: true})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.done:
	default:
		t.Error("redraw goroutine still running after Close")
	}
	plain := stripANSI(out)
	for _, want := range []string{
		"[+] exporting 3.0s (3/3) FINISHED, 1 FAILED",
		"=> layer one", "45.6MB / 45.6MB  new    2.5s",
		"=> config", "done    1.3s",
		"=> push", "ERROR    0.1s", "error: boom second line",
	} {
		if !strings.Contains(plain, want) {
			t.Errorf("tty output lacks %q:\n%s", want, plain)
		}
	}
	if !strings.Contains(out, ansiRed) {
		t.Error("failed vertex not in red")
	}
	for _, l := range strings.Split(plain, "\n") {
		if n := len([]rune(l)); n >= 60 {
			t.Errorf("line of %d runes wider than the terminal: %q", n, l)
		}
	}
}

func TestTTYRedrawsOnTicks(t *testing.T) {
	var out lockedBuffer
	clk := &fakeClock{t: base}
	d := newDisplay(ModeTTY, &out, clk.now, ttyConfig{width: 80, height: 10}, time.Millisecond)
	d.Write(Event{ID: "a", Name: "layer " + strings.Repeat("x", 200), Started: base})
	clk.set(at(1500))
	d.Write(Event{ID: "a", Started: base, Current: 3_000_000, Total: 9_000_000})
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "2.0MB/s") && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	s := stripANSI(out.String())
	if !strings.Contains(s, "3.0MB / 9.0MB  2.0MB/s") || !strings.Contains(s, "layer xxx") || !strings.Contains(s, "...") {
		t.Errorf("tty redraw lacks the running vertex, its rate or its truncated name:\n%s", s)
	}
	if !strings.Contains(out.String(), "\x1b[") || !strings.Contains(s, "(0/1) FINISHED") {
		t.Errorf("no redraw or no final header:\n%q", out.String())
	}
}

func TestTTYFitsHeight(t *testing.T) {
	tt := newTTY(&bytes.Buffer{}, base, ttyConfig{width: 80, height: 8})
	for i := range 12 {
		e := Event{ID: string(rune('a' + i)), Name: "v", Started: base}
		if i < 9 {
			e.Completed = at(100)
		}
		tt.event(e, base)
	}
	lines := tt.render(at(200), false)
	if len(lines) > 7 {
		t.Errorf("%d lines for a terminal of 8:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	if !strings.Contains(strings.Join(lines, "\n"), "completed") {
		t.Errorf("hidden vertices not summarized:\n%s", strings.Join(lines, "\n"))
	}
	if n := len(tt.render(at(200), true)); n != 13 {
		t.Errorf("final block has %d lines, want all 13", n)
	}
}

func TestConcurrentWrites(t *testing.T) {
	for _, mode := range []Mode{ModeTTY, ModePlain, ModeRawJSON, ModeQuiet} {
		t.Run(string(mode), func(t *testing.T) {
			var out bytes.Buffer // every write to out happens under the display's lock
			d := newDisplay(mode, &out, time.Now, ttyConfig{width: 80, height: 24}, time.Millisecond)
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Go(func() {
					for i := range 20 {
						task := Start(d, string(rune('a'+g))+string(rune('a'+i)), "layer", 1000)
						for range 50 {
							task.Add(20)
						}
						var err error
						if i == 7 {
							err = errors.New("fail")
						}
						task.Done("new", err)
					}
				})
			}
			wg.Wait()
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
			d.Write(Event{ID: "late"}) // after Close: dropped, no panic
			if mode == ModeQuiet && strings.Count(out.String(), "ERROR") != 8 {
				t.Errorf("quiet output:\n%s", out.String())
			}
			if mode == ModePlain && strings.Count(out.String(), "DONE") != 8*19 {
				t.Errorf("plain printed %d DONE lines", strings.Count(out.String(), "DONE"))
			}
		})
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("closed pipe") }

func TestCloseReportsWriteError(t *testing.T) {
	d := newDisplay(ModePlain, failWriter{}, time.Now, ttyConfig{}, time.Hour)
	d.Write(Event{ID: "a"})
	if err := d.Close(); err == nil || !strings.Contains(err.Error(), "closed pipe") {
		t.Errorf("Close = %v, want the write error", err)
	}
}

func TestHumanBytes(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{
		{-1, "0B"}, {0, "0B"}, {999, "999B"}, {1000, "1.0kB"}, {1234, "1.2kB"},
		{999_949, "999.9kB"}, {999_999, "1.0MB"}, {12_300_000, "12.3MB"},
		{45_600_000_000, "45.6GB"}, {1 << 62, "4.6EB"},
	}
	for _, tt := range tests {
		if got := HumanBytes(tt.n); got != tt.want {
			t.Errorf("HumanBytes(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}
