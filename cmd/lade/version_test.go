package main

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionString(t *testing.T) {
	for _, tc := range []struct {
		name string
		bi   *debug.BuildInfo
		want string
	}{
		{"tagged", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.3"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.modified", Value: "false"}}},
			"v1.2.3, revision abc123, go1.26.8"},
		{"dirty checkout", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.modified", Value: "true"}}},
			"(devel), revision abc123+dirty, go1.26.8"},
		{"no vcs stamp", &debug.BuildInfo{GoVersion: "go1.26.8"}, "(devel), go1.26.8"},
		{"no build info", nil, "(unknown build)"},
	} {
		if got := versionString(tc.bi); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestVersionFlag runs the built lade: --version exits 0 and names the Go
// version it was built with.
func TestVersionFlag(t *testing.T) {
	out := newRunner(t).ok("--version")
	if !strings.HasPrefix(out, "lade version ") || !strings.Contains(out, runtime.Version()) {
		t.Fatalf("lade --version printed %q", out)
	}
}
