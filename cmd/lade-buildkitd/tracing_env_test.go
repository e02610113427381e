package main

import (
	"go/ast"
	"go/build"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// stockBuildkitdDir returns the directory of stock buildkitd's main
// package in the module cache (the BuildKit go.mod pins).
func stockBuildkitdDir(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/moby/buildkit").Output()
	if err != nil {
		t.Fatalf("go list -m github.com/moby/buildkit: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "cmd", "buildkitd")
}

// linuxFiles parses the non-test Go files of the package in dir that a
// linux/amd64 build without extra tags compiles.
func linuxFiles(t *testing.T, dir string) []*ast.File {
	t.Helper()
	ctx := build.Default
	ctx.GOOS, ctx.GOARCH, ctx.BuildTags = "linux", "amd64", nil
	pkg, err := ctx.ImportDir(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	for _, name := range pkg.GoFiles {
		f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(dir, name), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	return files
}

// TestBlankImportsMatchStock: every package stock buildkitd's main imports
// for its side effects (exporters and initializers registering themselves,
// such as the Jaeger exporter and TRACEPARENT's context) is imported by
// lade-buildkitd, so a BuildKit upgrade that adds one fails here.
func TestBlankImportsMatchStock(t *testing.T) {
	lade := map[string]bool{}
	for _, f := range linuxFiles(t, ".") {
		for _, imp := range f.Imports {
			lade[mustUnquote(t, imp.Path.Value)] = true
		}
	}
	var n int
	for _, f := range linuxFiles(t, stockBuildkitdDir(t)) {
		for _, imp := range f.Imports {
			if imp.Name == nil || imp.Name.Name != "_" {
				continue
			}
			n++
			if path := mustUnquote(t, imp.Path.Value); !lade[path] {
				t.Errorf("stock buildkitd imports %s for its side effects; lade-buildkitd does not", path)
			}
		}
	}
	if n == 0 {
		t.Fatal("no blank import found in stock buildkitd: has its main moved?")
	}
}

// TestEnvironmentMatchesStock: every environment variable stock
// buildkitd's main reads by name (os.Getenv, os.LookupEnv, a flag's
// cli.EnvVars) is named in lade-buildkitd's code too.
func TestEnvironmentMatchesStock(t *testing.T) {
	lade := map[string]bool{}
	for _, f := range linuxFiles(t, ".") {
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				lade[mustUnquote(t, lit.Value)] = true
			}
			return true
		})
	}
	var n int
	for _, f := range linuxFiles(t, stockBuildkitdDir(t)) {
		for _, name := range envNames(t, f) {
			n++
			if !lade[name] {
				t.Errorf("stock buildkitd reads $%s; lade-buildkitd never names it", name)
			}
		}
	}
	if n < 4 { // BUILDKITD_CONFIG, _LOG_LEVEL, _DEBUGADDR, NOTIFY_SOCKET, USER
		t.Fatalf("only %d environment variables found in stock buildkitd: has its main moved?", n)
	}
}

// envNames returns the string literals f passes to os.Getenv,
// os.LookupEnv and cli.EnvVars.
func envNames(t *testing.T, f *ast.File) []string {
	var names []string
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		x, ok := sel.X.(*ast.Ident)
		if !ok {
			return true
		}
		switch x.Name + "." + sel.Sel.Name {
		case "os.Getenv", "os.LookupEnv", "cli.EnvVars":
			for _, arg := range call.Args {
				if lit, ok := arg.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					names = append(names, mustUnquote(t, lit.Value))
				}
			}
		}
		return true
	})
	return names
}

// mustUnquote unquotes a Go string literal.
func mustUnquote(t *testing.T, lit string) string {
	t.Helper()
	s, err := strconv.Unquote(lit)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
