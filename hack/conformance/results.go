package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// result is one integration test's outcome on one daemon.
type result struct {
	status string // pass, fail, skip; "" when the stream has no outcome for it
	detail string // the first error line when it failed, the reason when skipped
}

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action string
	Test   string
	Output string
}

// line is one output line of a test and the subtest that printed it
// ("/propagate=1"; "" for the test itself).
type line struct {
	sub  string
	text string
}

// tops are the top-level tests whose subtests are BuildKit's integration
// tests (integration.Run names them TOP/TestXxx/worker=W[/matrix=value...]).
var tops = map[string]bool{"TestIntegration": true, "TestClientGatewayIntegration": true}

// readResults reads a `go test -json` stream and returns each integration
// test's result, keyed by its name, worker and matrix values without the
// top-level test (TestIntegration/TestXxx/worker=oci is keyed
// TestXxx/worker=oci, TestIntegration/TestXxx/worker=oci/secmode=sandbox
// TestXxx/worker=oci/secmode=sandbox).
func readResults(path string) (map[string]result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading test results: %w", err)
	}
	defer f.Close()
	var events []event
	seen := map[string]bool{} // every integration (sub)test name in the stream, without its top
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var ev event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			continue // the binary's own stderr, interleaved
		}
		if name := testName(ev.Test); name != "" {
			seen[name] = true
			events = append(events, ev)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	status := map[string]string{}
	output := map[string][]line{}
	for _, ev := range events {
		name := testName(ev.Test)
		key := testKey(name, seen)
		switch {
		case ev.Action == "output":
			output[key] = append(output[key], line{sub: strings.TrimPrefix(name, key), text: strings.TrimRight(ev.Output, "\n")})
		case name == key && (ev.Action == "pass" || ev.Action == "fail" || ev.Action == "skip"):
			status[key] = ev.Action
		}
	}
	results := map[string]result{}
	for key := range seen {
		if testKey(key, seen) != key {
			continue
		}
		r := result{status: status[key]}
		switch r.status {
		case "fail", "":
			r.detail = firstError(output[key])
		case "skip":
			r.detail = skipReason(output[key])
		}
		results[key] = r
	}
	return results, nil
}

// testName returns TestXxx/worker=W[/...] for TOP/TestXxx/worker=W[/...]
// when TOP is one of tops; "" for other tests.
func testName(test string) string {
	top, name, _ := strings.Cut(test, "/")
	parts := strings.Split(name, "/")
	if !tops[top] || len(parts) < 2 || !strings.HasPrefix(parts[1], "worker=") {
		return ""
	}
	return name
}

// testKey returns the integration test a (sub)test name belongs to: its
// shortest prefix, from TestXxx/worker=W on, that the stream has events
// for. A matrix test's name (TestXxx/worker=W/netmode=host) has more
// elements than TestXxx/worker=W, which has no events of its own; a
// subtest's parent always has events (its RUN line) before the subtest.
func testKey(name string, seen map[string]bool) string {
	parts := strings.Split(name, "/")
	for n := 2; n < len(parts); n++ {
		if p := strings.Join(parts[:n], "/"); seen[p] {
			return p
		}
	}
	return name
}

var (
	// fileLine matches t.Log and t.Skip output: "    file.go:123: message".
	fileLine = regexp.MustCompile(`^\s+([A-Za-z0-9_]+\.go):\d+: (.+)$`)
	// harnessLog matches the harness's own log lines (daemon logs), which
	// are never the error.
	harnessLog = regexp.MustCompile(`^(sandbox|run|util|registry|containerd|oci|backend)(_unix)?\.go$`)
)

// firstError finds the first failure message in a failed test's output:
// testify's "Error:" text with its continuation lines, else a panic, else
// the first line the test itself logged.
func firstError(lines []line) string {
	for i, l := range lines {
		t := strings.TrimSpace(l.text)
		if msg, ok := strings.CutPrefix(t, "Error:"); ok {
			parts := []string{strings.TrimSpace(msg)}
			for _, next := range lines[i+1 : min(i+4, len(lines))] {
				label, text, ok := testifyContinuation(next.text)
				if !ok || label != "" || isStackFrame(text) {
					break
				}
				parts = append(parts, text)
			}
			return subtestPrefix(l.sub) + traceOf(lines[:i]) + clip(strings.Join(parts, " "))
		}
	}
	for _, l := range lines {
		t := strings.TrimSpace(l.text)
		if strings.HasPrefix(t, "panic:") || strings.Contains(t, "sandbox timeout reached") ||
			strings.HasPrefix(t, "Test killed") {
			return subtestPrefix(l.sub) + clip(t)
		}
	}
	for _, l := range lines {
		if m := fileLine.FindStringSubmatch(l.text); m != nil && !harnessLog.MatchString(m[1]) {
			return subtestPrefix(l.sub) + clip(m[2])
		}
	}
	return "no error message in the output (see the run's log)"
}

// isStackFrame reports whether an error's continuation line is the start
// of the stack trace pkg/errors appends (a function or a file path).
func isStackFrame(text string) bool {
	return strings.HasPrefix(text, "github.com/") || strings.HasPrefix(text, "/") ||
		strings.HasPrefix(text, "runtime.") || strings.HasPrefix(text, "main.")
}

// traceOf returns "file.go:123: " for the last testify "Error Trace:" line
// in lines (the assertion's place in BuildKit's test), or "".
func traceOf(lines []line) string {
	for i := len(lines) - 1; i >= 0; i-- {
		if _, loc, ok := strings.Cut(lines[i].text, "Error Trace:"); ok {
			loc = strings.TrimSpace(loc)
			return loc[strings.LastIndex(loc, "/")+1:] + ": "
		}
	}
	return ""
}

// testifyContinuation splits a testify report line ("\tLabel:\ttext") into
// its label ("" on a continuation line) and text.
func testifyContinuation(s string) (label, text string, ok bool) {
	fields := strings.Split(strings.TrimLeft(s, " "), "\t")
	if len(fields) < 3 || fields[0] != "" {
		return "", "", false
	}
	return strings.TrimSpace(fields[1]), strings.TrimSpace(strings.Join(fields[2:], " ")), true
}

// skipReason is the message of t.Skip: the last line the test logged.
func skipReason(lines []line) string {
	reason := "skipped without a message (read the test)"
	for _, l := range lines {
		if m := fileLine.FindStringSubmatch(l.text); m != nil && !harnessLog.MatchString(m[1]) {
			reason = clip(m[2])
		}
	}
	return reason
}

// subtestPrefix names the subtest that failed, "(propagate=1) ", or "" when
// it was the test itself.
func subtestPrefix(sub string) string {
	if sub == "" {
		return ""
	}
	return "(" + strings.TrimPrefix(sub, "/") + ") "
}

// clip shortens s to one table cell.
func clip(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 260 {
		s = s[:257] + "..."
	}
	return s
}
