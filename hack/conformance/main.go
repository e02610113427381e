// Package main is hack/conformance.sh's report writer: it reads the
// `go test -json` streams of BuildKit's client integration tests run against
// stock buildkitd, against lade-buildkitd and (optionally) against
// lade-buildkitd with LADE_STOCK_COMPAT=true, and writes the side-by-side
// table (test, stock, lade, first error line, why stock cannot pass offline)
// with its counts as Markdown.
//
// Usage:
//
//	go run ./hack/conformance -tests LIST [-stock JSON] [-lade JSON] [-compat JSON]
//	    [-reasons FILE] [-title TEXT] [-workers oci,containerd] [-out FILE]
//	    [-require-pass]
//
// LIST has one "FILE<TAB>TestName" line per test, in table order; each test
// has a row per worker in -workers (default oci), or only on WORKER when the
// line is "FILE<TAB>TestName<TAB>WORKER". A daemon
// whose JSON is not given gets "–" in its column. FILE in -reasons has
// "TestName<TAB>reason" lines: why the test cannot pass offline on stock
// either; it is shown for tests that do not pass on stock.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "conformance report:", err)
		os.Exit(1)
	}
}

// run parses the flags, reads the inputs and writes the report to stdout
// and, with -out, to a file.
func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("conformance", flag.ContinueOnError)
	tests := fs.String("tests", "", "file of FILE<TAB>TestName lines, in table order (required)")
	stock := fs.String("stock", "", "go test -json output of the run against stock buildkitd")
	lade := fs.String("lade", "", "go test -json output of the run against lade-buildkitd")
	compat := fs.String("compat", "", "go test -json output of the run against lade-buildkitd with LADE_STOCK_COMPAT=true")
	reasons := fs.String("reasons", "", "file of TestName<TAB>reason lines: why stock cannot pass it offline")
	title := fs.String("title", "BuildKit client integration tests", "the report's heading")
	workers := fs.String("workers", "oci", "comma-separated BuildKit test workers the runs used (oci, containerd)")
	out := fs.String("out", "", "also write the report to this file")
	requirePass := fs.Bool("require-pass", false, "fail unless every listed test passed on every daemon given")
	ranOnly := fs.Bool("ran-only", false, "leave out listed tests that have no result on any daemon (the whole suite's list names every test function, registered or not)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *tests == "" {
		return errors.New("-tests is required: a file of FILE<TAB>TestName lines")
	}
	pairs, err := readPairs(*tests)
	if err != nil {
		return err
	}
	list := expandRows(pairs, strings.Split(*workers, ","))
	why := map[string]string{}
	if *reasons != "" {
		pairs, err := readPairs(*reasons)
		if err != nil {
			return err
		}
		for _, p := range pairs {
			why[p[0]] = p[1]
		}
	}
	daemons := []daemon{{name: "stock"}, {name: "lade"}, {name: "lade --stock-compat"}}
	for i, path := range []string{*stock, *lade, *compat} {
		if path == "" {
			continue
		}
		if daemons[i].results, err = readResults(path); err != nil {
			return err
		}
	}
	list = matrixRows(list, daemons, *ranOnly)
	var b strings.Builder
	writeReport(&b, *title, *workers, list, daemons, why)
	if _, err := io.WriteString(stdout, b.String()); err != nil {
		return err
	}
	if *out != "" {
		if err := os.WriteFile(*out, []byte(b.String()), 0o644); err != nil {
			return fmt.Errorf("writing the report: %w", err)
		}
	}
	if *requirePass {
		return allPassed(list, daemons)
	}
	return nil
}

// allPassed returns an error naming the tests that did not pass on a
// daemon that was run.
func allPassed(list []row, daemons []daemon) error {
	var failed []string
	for _, d := range daemons {
		if d.results == nil {
			continue
		}
		for _, t := range list {
			if r := d.results[t.key]; r.status != "pass" {
				failed = append(failed, fmt.Sprintf("%s on %s (%s)", t.label, d.name, mark(d.results, r)))
			}
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d did not pass: %s", len(failed), strings.Join(failed, ", "))
	}
	return nil
}

// row is one line of the table: a test on one worker.
type row struct {
	file  string // the test's source file
	test  string // TestXxx
	key   string // TestXxx/worker=W, as readResults keys results
	label string // what the table shows: TestXxx, with the worker when there are several
}

// expandRows makes a row per test and worker; a test given as
// "TestName<TAB>WORKER" gets a row for that worker only.
func expandRows(tests [][2]string, workers []string) []row {
	var rows []row
	for _, t := range tests {
		name, only, _ := strings.Cut(t[1], "\t")
		for _, w := range workers {
			if only != "" && only != w {
				continue
			}
			r := row{file: t[0], test: name, key: name + "/worker=" + w, label: name}
			if len(workers) > 1 {
				r.label += " (" + w + ")"
			}
			rows = append(rows, r)
		}
	}
	return rows
}

// matrixRows replaces the row of a matrix test (run once per matrix value,
// keyed TestXxx/worker=W/netmode=host) by a row per variant that has a
// result on some daemon; with ranOnly it drops the rows no daemon has a
// result for.
func matrixRows(rows []row, daemons []daemon, ranOnly bool) []row {
	var out []row
	for _, r := range rows {
		variants := map[string]bool{}
		exact := false
		for _, d := range daemons {
			for key := range d.results {
				exact = exact || key == r.key
				if strings.HasPrefix(key, r.key+"/") {
					variants[key] = true
				}
			}
		}
		switch {
		case exact || (len(variants) == 0 && !ranOnly):
			out = append(out, r)
		case len(variants) > 0:
			for _, key := range slices.Sorted(maps.Keys(variants)) {
				v := r
				v.key = key
				v.label += " " + strings.ReplaceAll(strings.TrimPrefix(key, r.key+"/"), "/", " ")
				out = append(out, v)
			}
		}
	}
	return out
}

// readPairs reads a file of KEY<TAB>VALUE lines; blank lines and lines
// starting with # are ignored.
func readPairs(path string) ([][2]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	defer f.Close()
	var pairs [][2]string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "\t")
		if !ok {
			return nil, fmt.Errorf("%s:%d: %q has no tab between its two fields", path, n, line)
		}
		pairs = append(pairs, [2]string{strings.TrimSpace(k), strings.TrimSpace(v)})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return pairs, nil
}
