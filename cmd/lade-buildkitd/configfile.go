package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"

	"github.com/lade-build/lade/internal/attrs"
	"github.com/moby/buildkit/cmd/buildkitd/config"
	"github.com/pelletier/go-toml/v2"
)

// loadConfigFile reads a buildkitd.toml with the TOML library and types
// BuildKit uses. A missing file is an empty config, as in buildkitd; a key
// that is not part of buildkitd's config is an error naming the file, the
// key and, for a near miss, the key meant.
func loadConfigFile(path string) (config.Config, error) {
	var cfg config.Config
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return cfg, nil
	}
	if err != nil {
		return cfg, fmt.Errorf("failed to load config from %s: %w", path, err)
	}
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err = dec.Decode(&cfg)
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		return cfg, unknownKeysError(path, strict)
	}
	var derr *toml.DecodeError
	if errors.As(err, &derr) {
		row, col := derr.Position()
		return cfg, fmt.Errorf("%s:%d:%d: %w", path, row, col, err)
	}
	if err != nil {
		return cfg, fmt.Errorf("failed to parse config %s: %w", path, err)
	}
	return cfg, nil
}

// unknownKeysError lists the keys of the file buildkitd's config has no
// place for, each with its line and a suggestion when one is close.
func unknownKeysError(path string, strict *toml.StrictMissingError) error {
	known := configKeys(reflect.TypeFor[config.Config](), "")
	msgs := make([]string, 0, len(strict.Errors))
	for _, e := range strict.Errors {
		key := e.Key()
		row, _ := e.Position()
		msg := fmt.Sprintf("%s:%d: unknown key %s", path, row, formatKey(key))
		if s := nearestKey(key, known); s != nil {
			msg += fmt.Sprintf(": did you mean %s?", formatKey(s))
		}
		msgs = append(msgs, msg)
	}
	return fmt.Errorf("%s (see docs/buildkitd.md for the keys buildkitd.toml takes)", strings.Join(msgs, "; "))
}

// configKeys lists the dotted keys of a config struct type by their toml
// tags; a map level is written "*" (any name).
func configKeys(t reflect.Type, prefix string) []string {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Map:
		return configKeys(t.Elem(), prefix+"*.")
	case reflect.Struct:
	default:
		return nil
	}
	var out []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if f.Anonymous && name == "" {
			out = append(out, configKeys(f.Type, prefix)...)
			continue
		}
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		out = append(out, prefix+name)
		out = append(out, configKeys(f.Type, prefix+name+".")...)
	}
	return out
}

// nearestKey returns the known key closest to key among those with the
// same parent tables (a "*" level matches any name), or nil when none is
// close.
func nearestKey(key []string, known []string) []string {
	last := key[len(key)-1]
	var best []string
	bestDist := max(2, len(last)/3) + 1
	for _, k := range known {
		kp := strings.Split(k, ".")
		if len(kp) != len(key) || !sameParent(key, kp) {
			continue
		}
		if d := attrs.Distance(strings.ToLower(last), strings.ToLower(kp[len(kp)-1])); d < bestDist {
			best, bestDist = append(key[:len(key)-1:len(key)-1], kp[len(kp)-1]), d
		}
	}
	return best
}

// formatKey writes a key path as TOML does, quoting the parts that are
// not bare keys (registry."docker.io".mirrors).
func formatKey(key []string) string {
	parts := make([]string, len(key))
	for i, p := range key {
		parts[i] = p
		if p == "" || strings.IndexFunc(p, func(r rune) bool {
			return !(r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
		}) >= 0 {
			parts[i] = strconv.Quote(p)
		}
	}
	return strings.Join(parts, ".")
}

// sameParent reports whether two key paths have the same parent tables.
func sameParent(a, b []string) bool {
	for i := range len(a) - 1 {
		if b[i] != "*" && b[i] != a[i] {
			return false
		}
	}
	return true
}
