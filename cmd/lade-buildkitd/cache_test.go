package main

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/buildkit/cache/remotecache/gha/ghatypes"
	"github.com/moby/buildkit/cmd/buildkitd/config"
	"github.com/moby/buildkit/session"
)

// stockCacheBackends reads stock buildkitd's main.go in the module cache
// (the BuildKit go.mod pins) and returns the keys of its map literals of
// cache exporter and importer resolvers.
func stockCacheBackends(t *testing.T) (exporters, importers []string) {
	t.Helper()
	main := filepath.Join(stockBuildkitdDir(t), "main.go")
	f, err := parser.ParseFile(token.NewFileSet(), main, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	ast.Inspect(f, func(n ast.Node) bool {
		lit, ok := n.(*ast.CompositeLit)
		if !ok {
			return true
		}
		m, ok := lit.Type.(*ast.MapType)
		if !ok {
			return true
		}
		sel, ok := m.Value.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		var keys []string
		for _, e := range lit.Elts {
			k, err := strconv.Unquote(e.(*ast.KeyValueExpr).Key.(*ast.BasicLit).Value)
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, k)
		}
		switch sel.Sel.Name {
		case "ResolveCacheExporterFunc":
			exporters = keys
		case "ResolveCacheImporterFunc":
			importers = keys
		}
		return true
	})
	if len(exporters) == 0 || len(importers) == 0 {
		t.Fatalf("%s: no cache resolver maps found (exporters %v, importers %v): has stock's wiring moved?", main, exporters, importers)
	}
	slices.Sort(exporters)
	slices.Sort(importers)
	return exporters, importers
}

// TestCacheBackendsAreStocks: lade-buildkitd registers exactly the cache
// backends stock buildkitd of the pinned BuildKit registers, so a BuildKit
// upgrade that adds one fails here until it is wired.
func TestCacheBackendsAreStocks(t *testing.T) {
	wantExp, wantImp := stockCacheBackends(t)
	sm, err := session.NewManager()
	if err != nil {
		t.Fatal(err)
	}
	b := newCacheBackends(&config.Config{Root: t.TempDir()}, sm, nil, nil)
	gotExp := slices.Sorted(maps.Keys(b.exporters))
	gotImp := slices.Sorted(maps.Keys(b.importers))
	if !slices.Equal(gotExp, wantExp) {
		t.Errorf("cache exporters %v, stock registers %v", gotExp, wantExp)
	}
	if !slices.Equal(gotImp, wantImp) {
		t.Errorf("cache importers %v, stock registers %v", gotImp, wantImp)
	}
	for _, want := range []string{"registry", "local", "inline", "gha", "s3", "azblob"} {
		if b.exporters[want] == nil {
			t.Errorf("no %s cache exporter", want)
		}
	}
}

// TestCacheBackendsReadAttrs: the gha, s3 and azblob backends are
// resolved from the build's attributes, and a missing required one is an
// error naming it (no backend silently exports nowhere).
func TestCacheBackendsReadAttrs(t *testing.T) {
	sm, err := session.NewManager()
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{Root: t.TempDir()}
	cfg.Cache.GHA = &ghatypes.CacheConfig{Verify: ghatypes.VerifyConfig{Required: true}}
	b := newCacheBackends(cfg, sm, nil, nil)
	ctx := context.Background()
	for _, tc := range []struct {
		typ, want string
		attrs     map[string]string
	}{
		{"gha", "token not set", map[string]string{"url_v2": "http://127.0.0.1:1/"}},
		{"gha", "url not set", map[string]string{"token": "x"}},
		{"s3", "bucket", map[string]string{"region": "us-east-1"}},
		{"azblob", "account_url", map[string]string{"name": "x"}},
	} {
		_, err := b.exporters[tc.typ](ctx, nil, tc.attrs)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("export %s %v: error %v, want one naming %q", tc.typ, tc.attrs, err, tc.want)
		}
		_, _, err = b.importers[tc.typ](ctx, nil, tc.attrs)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("import %s %v: error %v, want one naming %q", tc.typ, tc.attrs, err, tc.want)
		}
	}
}

// TestGHAVerifierIsShared: the signature verifier is created once, under
// the root's policy directory, and every caller gets the same one.
func TestGHAVerifierIsShared(t *testing.T) {
	v := ghaVerifier(filepath.Join(t.TempDir(), "policy"))
	a, errA := v()
	b, errB := v()
	if a != b || (errA == nil) != (errB == nil) {
		t.Fatalf("two calls gave %p (%v) and %p (%v): want one verifier", a, errA, b, errB)
	}
}
