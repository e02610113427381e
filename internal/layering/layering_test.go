// Package layering holds the test that enforces lade's dependency rule.
//
// Every package of the module belongs to one unit, and every unit to one
// layer. A package may import its own unit (a unit is a folder and the
// folders below it) and any unit of a lower layer; it may not import a
// unit of its own layer or of a higher one. So the exporter's root package
// and its outputs, which stand in one layer, can import neither each other
// nor the workflows above them. Library packages (every layer below the
// programs) never import BuildKit. A package no unit names fails the test,
// so a new folder has to be placed in a layer before it lands.
package layering

import (
	"fmt"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
)

const mod = "github.com/lade-build/lade/"

// unit is one idea of the layout: a folder, with (unless exact) the
// folders below it.
type unit struct {
	path  string
	exact bool
}

// layer is a set of units that may import lower layers only.
type layer struct {
	name  string
	units []unit
}

// layers lists lade's layers from the bottom up.
var layers = []layer{
	{"leaves", []unit{{path: "progress"}, {path: "internal/writeback"}, {path: "internal/offheap"}, {path: "internal/testutil"}, {path: "registries"}, {path: "soci"}}},
	{"refs", []unit{{path: "cache"}}},
	{"pipeline", []unit{{path: "blobs"}, {path: "exporter/archive"}, {path: "exporter/exportertest"}}},
	{"writer, store and outputs", []unit{
		{path: "exporter", exact: true},
		{path: "imagestore"}, {path: "exporter/unpack"},
		{path: "exporter/oci"}, {path: "exporter/docker"}, {path: "exporter/push"}, {path: "exporter/containerd"},
	}},
	{"workflows", []unit{{path: "commit"}, {path: "manifestlist"}, {path: "transfer"}, {path: "internal/attrs"}}},
	{"adapters and CLI", []unit{{path: "buildkit"}, {path: "cmd/lade"}}},
	{"daemon", []unit{{path: "cmd/lade-buildkitd"}}},
	{"tests and tools", []unit{{path: "frontend-test"}, {path: "hack"}, {path: "internal/layering"}, {path: "internal/reliability"}}},
}

// programs is the first layer allowed to import BuildKit.
const programs = "adapters and CLI"

// placement is where a package stands: its unit and its layer's index.
type placement struct {
	unit  string
	layer int
}

// place finds the unit a package belongs to: the longest unit path that
// covers it.
func place(pkg string) (placement, bool) {
	best, found := placement{}, false
	for i, l := range layers {
		for _, u := range l.units {
			covers := pkg == u.path || (!u.exact && strings.HasPrefix(pkg, u.path+"/"))
			if covers && (!found || len(u.path) > len(best.unit)) {
				best, found = placement{u.path, i}, true
			}
		}
	}
	return best, found
}

// check returns every breach of the rule in a graph of lade packages (paths
// relative to the module) to the packages they depend on, lade's and others.
func check(graph map[string][]string) []string {
	programLayer := slices.IndexFunc(layers, func(l layer) bool { return l.name == programs })
	var bad []string
	for pkg, deps := range graph {
		from, ok := place(pkg)
		if !ok {
			bad = append(bad, fmt.Sprintf("%s is in no layer: add its folder to a layer in internal/layering", pkg))
			continue
		}
		for _, dep := range deps {
			if strings.HasPrefix(dep, "github.com/moby/buildkit") && from.layer < programLayer {
				bad = append(bad, fmt.Sprintf("library package %s depends on %s", pkg, dep))
				continue
			}
			if !strings.HasPrefix(dep, mod) {
				continue
			}
			d := strings.TrimPrefix(dep, mod)
			to, ok := place(d)
			if !ok || to.unit == from.unit || to.layer < from.layer {
				continue
			}
			bad = append(bad, fmt.Sprintf("%s (layer %q) imports %s (layer %q), against the dependency rule",
				pkg, layers[from.layer].name, d, layers[to.layer].name))
		}
	}
	sort.Strings(bad)
	return bad
}

func TestDependencyRule(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Deps " "}}`, "../../...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	graph := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		graph[strings.TrimPrefix(fields[0], mod)] = fields[1:]
	}
	if len(graph) < 20 {
		t.Fatalf("only %d packages listed: is the module layout as expected?", len(graph))
	}
	for _, b := range check(graph) {
		t.Error(b)
	}
}

// TestCheckSeesBothDirections proves the rule catches what a prefix rule
// could not: the writer importing an output, an output importing the
// writer, a pipeline package importing a workflow, a new folder, and
// BuildKit in the library.
func TestCheckSeesBothDirections(t *testing.T) {
	graph := map[string][]string{
		"exporter":            {mod + "exporter/oci", mod + "blobs"},
		"exporter/oci":        {mod + "exporter", mod + "exporter/archive"},
		"exporter/archive":    {mod + "exporter/archive/archivetest", mod + "cache"},
		"blobs":               {mod + "commit"},
		"blobs/internal/x":    {mod + "blobs"},
		"newthing":            {mod + "cache"},
		"cache":               {"github.com/moby/buildkit/util/bklog"},
		"buildkit":            {"github.com/moby/buildkit/exporter", mod + "exporter/oci"},
		"cmd/lade-buildkitd":  {mod + "buildkit"},
		"frontend-test":       {mod + "cmd/lade"},
		"internal/writeback":  {},
		"imagestore":          {mod + "exporter/push"},
		"exporter/unpack":     {mod + "cache"},
		"manifestlist":        {mod + "exporter/archive", mod + "imagestore"},
		"exporter/containerd": {mod + "internal/writeback"},
	}
	got := strings.Join(check(graph), "\n")
	for _, want := range []string{
		`exporter (layer "writer, store and outputs") imports exporter/oci`,
		`exporter/oci (layer "writer, store and outputs") imports exporter (layer`,
		`imagestore (layer "writer, store and outputs") imports exporter/push`,
		`blobs (layer "pipeline") imports commit (layer "workflows")`,
		`newthing is in no layer`,
		`library package cache depends on github.com/moby/buildkit/util/bklog`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("check missed %q; it found:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "\n") + 1; n != 6 {
		t.Errorf("check found %d breaches, want 6 (allowed imports must pass):\n%s", n, got)
	}
}
