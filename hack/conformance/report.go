package main

import (
	"fmt"
	"strings"
	"time"
)

// writeReport writes the Markdown report: counts, one table per test file,
// and the tests that pass on stock but not on lade. A nil daemon map means
// that daemon was not run.
func writeReport(b *strings.Builder, title, workers string, list []row, stock, lade map[string]result, why map[string]string) {
	fmt.Fprintf(b, "### %s\n\nRun %s, worker=%s, offline (hack/conformance.sh).\n\n",
		title, time.Now().UTC().Format("2006-01-02 15:04 UTC"), workers)
	writeCounts(b, list, stock, lade)
	file := ""
	for _, t := range list {
		if t.file != file {
			file = t.file
			fmt.Fprintf(b, "\n#### %s\n\n| test | stock | lade | first error (lade's; stock's where only stock fails) | why stock fails offline |\n|---|---|---|---|---|\n", file)
		}
		s, l := lookup(stock, t.key), lookup(lade, t.key)
		detail := ""
		switch {
		case l.status == "fail" || (lade != nil && l.status == ""):
			detail = l.detail
		case s.status == "fail" || (stock != nil && s.status == ""):
			detail = "stock: " + s.detail
		case l.status == "skip":
			detail = "skipped: " + l.detail
		case s.status == "skip":
			detail = "skipped: " + s.detail
		}
		note := ""
		if stock != nil && s.status != "pass" {
			note = why[t.test]
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", t.label, mark(stock, s), mark(lade, l), cell(detail), cell(note))
	}
	writeRegressions(b, list, stock, lade)
}

// writeCounts writes how many tests each daemon passed, failed and skipped.
func writeCounts(b *strings.Builder, list []row, stock, lade map[string]result) {
	count := func(m map[string]result, status string) int {
		n := 0
		for _, t := range list {
			if lookup(m, t.key).status == status {
				n++
			}
		}
		return n
	}
	both := 0
	for _, t := range list {
		if lookup(stock, t.key).status == "pass" && lookup(lade, t.key).status == "pass" {
			both++
		}
	}
	fmt.Fprintf(b, "| | rows | pass | fail | skip |\n|---|---|---|---|---|\n")
	for _, d := range []struct {
		name string
		m    map[string]result
	}{{"stock buildkitd", stock}, {"lade-buildkitd", lade}} {
		if d.m == nil {
			fmt.Fprintf(b, "| %s | %d | not run | | |\n", d.name, len(list))
			continue
		}
		fmt.Fprintf(b, "| %s | %d | %d | %d | %d |\n", d.name, len(list),
			count(d.m, "pass"), len(list)-count(d.m, "pass")-count(d.m, "skip"), count(d.m, "skip"))
	}
	if stock != nil && lade != nil {
		fmt.Fprintf(b, "| both | %d | %d | | |\n", len(list), both)
	}
}

// writeRegressions lists the tests that pass on stock and not on lade.
func writeRegressions(b *strings.Builder, list []row, stock, lade map[string]result) {
	if stock == nil || lade == nil {
		return
	}
	var lines []string
	for _, t := range list {
		s, l := lookup(stock, t.key), lookup(lade, t.key)
		if s.status == "pass" && l.status != "pass" {
			lines = append(lines, fmt.Sprintf("- %s (%s): %s", t.label, mark(lade, l), l.detail))
		}
	}
	fmt.Fprintf(b, "\n#### Passing on stock, not on lade: %d\n\n", len(lines))
	for _, l := range lines {
		fmt.Fprintln(b, l)
	}
}

// lookup returns a test's result; the zero result when it has none.
func lookup(m map[string]result, name string) result {
	if m == nil {
		return result{}
	}
	return m[name]
}

// mark is a result's table cell.
func mark(m map[string]result, r result) string {
	switch {
	case m == nil:
		return "–"
	case r.status == "pass":
		return "pass"
	case r.status == "fail":
		return "**FAIL**"
	case r.status == "skip":
		return "skip"
	}
	return "**no result**"
}

// cell escapes text for a Markdown table cell.
func cell(s string) string {
	return strings.ReplaceAll(s, "|", `\|`)
}
