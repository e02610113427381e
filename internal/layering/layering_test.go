// Package layering holds the test that enforces lade's dependency rule:
// cache <- blobs <- exporter <- outputs <- buildkit, cmd; progress imports
// no other lade package; library packages never import BuildKit.
package layering

import (
	"os/exec"
	"strings"
	"testing"
)

const mod = "github.com/lade-build/lade/"

// forbidden maps a package prefix to the lade packages it may not depend on.
var forbidden = map[string][]string{
	"progress":           {"cache", "blobs", "exporter", "buildkit", "cmd", "internal"},
	"cache":              {"blobs", "exporter", "buildkit", "cmd"},
	"blobs":              {"exporter", "buildkit", "cmd"},
	"exporter":           {"buildkit", "cmd"},
	"internal/attrs":     {"buildkit", "cmd"},
	"internal/writeback": {"cache", "blobs", "exporter", "buildkit", "cmd"},
	"registries":         {"cache", "blobs", "exporter", "transfer", "buildkit", "cmd"},
	"transfer":           {"buildkit", "cmd"},
}

// library lists the packages that must never depend on BuildKit.
var library = []string{"cache", "blobs", "exporter", "progress", "registries", "transfer"}

func TestDependencyRule(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Deps " "}}`, "../../...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(fields[0], mod)
		for _, dep := range fields[1:] {
			for _, lib := range library {
				if under(pkg, lib) && strings.HasPrefix(dep, "github.com/moby/buildkit") {
					t.Errorf("library package %s depends on %s", pkg, dep)
				}
			}
			for prefix, bad := range forbidden {
				if !under(pkg, prefix) || !strings.HasPrefix(dep, mod) {
					continue
				}
				for _, b := range bad {
					if d := strings.TrimPrefix(dep, mod); under(d, b) {
						t.Errorf("%s imports %s, against the dependency rule", pkg, d)
					}
				}
			}
		}
		checked++
	}
	if checked < 10 {
		t.Fatalf("only %d packages listed: is the module layout as expected?", checked)
	}
}

// under reports whether pkg is p or below it.
func under(pkg, p string) bool { return pkg == p || strings.HasPrefix(pkg, p+"/") }
