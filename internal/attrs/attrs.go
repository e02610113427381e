// Package attrs parses exporter attributes (the key=value pairs of
// `--output type=...,k=v` and of BuildKit's exporter attrs) strictly, in one
// place for the CLI and lade-buildkitd: an unknown key is an error naming the
// nearest valid key, a bad value names the accepted values, and booleans
// parse one way everywhere (empty means true).
package attrs

import (
	"encoding/csv"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// ParseCSV splits "type=oci,dest=out.tar,annotation.a=b" into a map. A key
// given twice is an error, except "name", whose values are joined with ","
// as BuildKit does.
func ParseCSV(s string) (map[string]string, error) {
	r := csv.NewReader(strings.NewReader(s))
	r.TrimLeadingSpace = true
	fields, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("parse %q: %w", s, err)
	}
	out := map[string]string{}
	for _, f := range fields {
		k, v, ok := strings.Cut(f, "=")
		k = strings.TrimSpace(k)
		if k == "" {
			return nil, fmt.Errorf("parse %q: empty key in %q: use key=value", s, f)
		}
		if !ok {
			v = ""
		}
		if old, dup := out[k]; dup {
			if k != "name" {
				return nil, fmt.Errorf("parse %q: key %q given twice", s, k)
			}
			v = old + "," + v
		}
		out[k] = v
	}
	return out, nil
}

// ParseBool parses a boolean attribute: empty means true.
func ParseBool(key, v string) (bool, error) {
	if v == "" {
		return true, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s=%q is not a boolean: use true or false", key, v)
	}
	return b, nil
}

// Unknown returns an error for an unknown key, naming the nearest of known.
func Unknown(key string, known []string) error {
	best, dist := "", 1<<30
	for _, k := range known {
		if d := Distance(key, k); d < dist {
			best, dist = k, d
		}
	}
	if best != "" && dist <= max(2, len(key)/3) {
		return fmt.Errorf("unknown attribute %q: did you mean %q?", key, best)
	}
	sorted := append([]string(nil), known...)
	sort.Strings(sorted)
	return fmt.Errorf("unknown attribute %q: valid attributes are %s", key, strings.Join(sorted, ", "))
}

// nearMiss returns the "did you mean" error of Unknown when key is within a
// small edit distance of a known key (at most 2 edits, and at most a third
// of key's length), nil when key is no typo of a known key.
func nearMiss(key string, known []string) error {
	for _, k := range known {
		if d := Distance(key, k); d > 0 && d <= 2 && 3*d <= len(key) {
			return Unknown(key, known)
		}
	}
	return nil
}

// Distance is the Levenshtein distance between a and b, the measure of
// every "did you mean" suggestion lade makes.
func Distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
