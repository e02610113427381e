package buildkit

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// importDirs are the folders the import-name rule of the package comment
// covers.
var importDirs = []string{".", "../cmd/lade-buildkitd"}

const (
	ladeModule      = "github.com/lade-build/lade/"
	buildkitModule  = "github.com/moby/buildkit/"
	containerdOwner = "github.com/containerd/"
)

// majorSuffix matches a module's major-version path element.
var majorSuffix = regexp.MustCompile(`^v[0-9]+$`)

// defaultName is the name an unaliased import of p takes: its last path
// element, or the one before a major-version suffix.
func defaultName(p string) string {
	elems := strings.Split(p, "/")
	if n := len(elems); n > 1 && majorSuffix.MatchString(elems[n-1]) && strings.Contains(p, ".") {
		return elems[n-2]
	}
	return elems[len(elems)-1]
}

// TestImportNames checks the import-name rule of the package comment over
// buildkit/ and cmd/lade-buildkitd/: one name, one package (and the
// reverse); lade's packages unaliased; a BuildKit package never takes a
// name a package from elsewhere has, nor a containerd package one that a
// package other than BuildKit's or containerd's has.
func TestImportNames(t *testing.T) {
	byName := map[string]map[string][]string{} // local name -> path -> files
	byPath := map[string]map[string]bool{}     // path -> local names
	for _, dir := range importDirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, im := range af.Imports {
				p, _ := strconv.Unquote(im.Path.Value)
				name := defaultName(p)
				if im.Name != nil {
					name = im.Name.Name
				}
				if name == "_" || name == "." {
					continue
				}
				if byName[name] == nil {
					byName[name] = map[string][]string{}
				}
				byName[name][p] = append(byName[name][p], f)
				if byPath[p] == nil {
					byPath[p] = map[string]bool{}
				}
				byPath[p][name] = true
			}
		}
	}
	if len(byPath) < 50 {
		t.Fatalf("found %d imported packages; the folders were not read", len(byPath))
	}
	for name, paths := range byName {
		if len(paths) > 1 {
			t.Errorf("import name %s means %d packages: %v", name, len(paths), paths)
		}
	}
	for p, names := range byPath {
		if len(names) > 1 {
			t.Errorf("package %s is imported under the names %v; use one", p, sortedKeys(names))
		}
	}
	// claimedBy reports whether a package other than p whose path has none
	// of the prefixes in exempt is imported under the name n.
	claimedBy := func(n, p string, exempt ...string) bool {
	paths:
		for other := range byName[n] {
			if other == p {
				continue
			}
			for _, e := range exempt {
				if strings.HasPrefix(other, e) {
					continue paths
				}
			}
			return true
		}
		return false
	}
	for p, names := range byPath {
		base := defaultName(p)
		for name := range names {
			switch {
			case strings.HasPrefix(p, ladeModule) && name != base:
				t.Errorf("lade's package %s is imported as %s; lade's packages keep their names", p, name)
			case strings.HasPrefix(p, buildkitModule) && claimedBy(base, p, buildkitModule) && name == base:
				t.Errorf("BuildKit's %s shares its name with %v: import it as bk%s", p, byName[base], base)
			case strings.HasPrefix(p, containerdOwner) && claimedBy(base, p, buildkitModule, containerdOwner) && name == base:
				t.Errorf("containerd's %s shares its name with %v: import it as ctd%s", p, byName[base], base)
			}
		}
	}
}

// sortedKeys returns the keys of m in order.
func sortedKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
