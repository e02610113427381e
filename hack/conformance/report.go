package main

import (
	"fmt"
	"strings"
	"time"
)

// daemon is one column of the table: a daemon's results, nil when it was
// not run.
type daemon struct {
	name    string // the column's heading
	results map[string]result
}

// The columns, in order: stock first, then lade as it is by default, then
// lade with its stock-compatible switches on.
const (
	colStock = iota
	colLade
	colCompat
)

// writeReport writes the Markdown report: counts, one table per test file,
// the tests that pass on stock and not on lade, and those that pass on lade
// only with --stock-compat (lade's intended differences).
func writeReport(b *strings.Builder, title, workers string, list []row, daemons []daemon, why map[string]string) {
	fmt.Fprintf(b, "### %s\n\nRun %s, worker=%s, offline (hack/conformance.sh).\n\n",
		title, time.Now().UTC().Format("2006-01-02 15:04 UTC"), workers)
	writeCounts(b, list, daemons)
	var ran []daemon
	for _, d := range daemons {
		if d.results != nil {
			ran = append(ran, d)
		}
	}
	file := ""
	for _, t := range list {
		if t.file != file {
			file = t.file
			fmt.Fprintf(b, "\n#### %s\n\n| test |", file)
			for _, d := range ran {
				fmt.Fprintf(b, " %s |", d.name)
			}
			fmt.Fprintf(b, " first error (lade's; else stock's) | why stock fails offline |\n|---|%s---|---|\n",
				strings.Repeat("---|", len(ran)))
		}
		fmt.Fprintf(b, "| %s |", t.label)
		for _, d := range ran {
			fmt.Fprintf(b, " %s |", mark(d.results, lookup(d.results, t.key)))
		}
		note := ""
		if s := daemons[colStock]; s.results != nil && lookup(s.results, t.key).status != "pass" {
			note = why[t.test]
		}
		fmt.Fprintf(b, " %s | %s |\n", cell(firstDetail(t.key, daemons)), cell(note))
	}
	writeRegressions(b, list, daemons)
}

// firstDetail is the error shown for a row: lade's, else lade
// --stock-compat's, else stock's; a skip's reason when nothing failed.
func firstDetail(key string, daemons []daemon) string {
	order := []int{colLade, colCompat, colStock}
	for _, i := range order {
		d := daemons[i]
		if r := lookup(d.results, key); d.results != nil && (r.status == "fail" || r.status == "") {
			if i == colLade {
				return r.detail
			}
			return strings.Fields(d.name)[0] + ": " + r.detail
		}
	}
	for _, i := range order {
		if r := lookup(daemons[i].results, key); r.status == "skip" {
			return "skipped: " + r.detail
		}
	}
	return ""
}

// writeCounts writes how many rows each daemon passed, failed and skipped,
// and how many pass on stock and on each lade column.
func writeCounts(b *strings.Builder, list []row, daemons []daemon) {
	count := func(m map[string]result, status string) int {
		n := 0
		for _, t := range list {
			if lookup(m, t.key).status == status {
				n++
			}
		}
		return n
	}
	fmt.Fprintf(b, "| | rows | pass | fail | skip |\n|---|---|---|---|---|\n")
	for _, d := range daemons {
		if d.results == nil {
			continue
		}
		pass, skip := count(d.results, "pass"), count(d.results, "skip")
		fmt.Fprintf(b, "| %s | %d | %d | %d | %d |\n", d.name, len(list), pass, len(list)-pass-skip, skip)
	}
	stock := daemons[colStock].results
	for _, d := range daemons[colLade:] {
		if stock == nil || d.results == nil {
			continue
		}
		both := 0
		for _, t := range list {
			if lookup(stock, t.key).status == "pass" && lookup(d.results, t.key).status == "pass" {
				both++
			}
		}
		fmt.Fprintf(b, "| stock and %s | %d | %d | | |\n", d.name, len(list), both)
	}
}

// writeRegressions lists the rows that pass on stock and not on lade (with
// lade --stock-compat's result when it ran), and the rows lade passes only
// with --stock-compat.
func writeRegressions(b *strings.Builder, list []row, daemons []daemon) {
	stock, lade, compat := daemons[colStock].results, daemons[colLade].results, daemons[colCompat].results
	if stock == nil || lade == nil {
		return
	}
	var failing, intended []string
	for _, t := range list {
		l := lookup(lade, t.key)
		if lookup(stock, t.key).status != "pass" || l.status == "pass" {
			continue
		}
		line := fmt.Sprintf("- %s (%s): %s", t.label, mark(lade, l), l.detail)
		switch c := lookup(compat, t.key); {
		case compat != nil && c.status == "pass":
			intended = append(intended, line)
		case compat != nil:
			failing = append(failing, line+" — with --stock-compat: "+mark(compat, c))
		default:
			failing = append(failing, line)
		}
	}
	if compat == nil {
		fmt.Fprintf(b, "\n#### Passing on stock, not on lade: %d\n\n", len(failing))
	} else {
		fmt.Fprintf(b, "\n#### Passing on stock, not on lade, not even with --stock-compat: %d\n\n", len(failing))
	}
	for _, l := range failing {
		fmt.Fprintln(b, l)
	}
	if compat == nil {
		return
	}
	fmt.Fprintf(b, "\n#### Passing on lade only with --stock-compat (its intended differences: empty layers dropped, its own gzip bytes, OCI tars started early): %d\n\n", len(intended))
	for _, l := range intended {
		fmt.Fprintln(b, l)
	}
}

// lookup returns a test's result; the zero result when it has none.
func lookup(m map[string]result, key string) result {
	if m == nil {
		return result{}
	}
	return m[key]
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
