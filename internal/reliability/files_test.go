package reliability

import (
	"bufio"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// must fails the test on err.
func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// writeFile writes data to path with mode (chmod'ed whatever the umask),
// creating parent directories.
func writeFile(t testing.TB, path, data string, mode os.FileMode) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(path), 0o755))
	must(t, os.WriteFile(path, []byte(data), mode))
	must(t, os.Chmod(path, mode))
}

// writeRandom writes size pseudo-random (incompressible) bytes from seed to
// path, creating parent directories.
func writeRandom(t testing.TB, path string, size int64, seed uint64) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(path), 0o755))
	f, err := os.Create(path)
	must(t, err)
	defer f.Close()
	var key [32]byte
	key[0], key[1] = byte(seed), byte(seed>>8)
	src := rand.NewChaCha8(key)
	w := bufio.NewWriterSize(f, 1<<20)
	if _, err := io.CopyN(w, src, size); err != nil {
		t.Fatal(err)
	}
	must(t, w.Flush())
	must(t, f.Close())
}

// sentinel is a directory beside the roots a test writes to, with one file
// in it: hostile input must change neither, nor add anything next to them.
type sentinel struct {
	dir  string
	file string
}

// sentinelContent is the content of the sentinel file.
const sentinelContent = "the sentinel must never change\n"

// newSentinel creates dir/sentinel/target.
func newSentinel(t testing.TB, dir string) sentinel {
	t.Helper()
	s := sentinel{dir: filepath.Join(dir, "sentinel")}
	s.file = filepath.Join(s.dir, "target")
	writeFile(t, s.file, sentinelContent, 0o644)
	return s
}

// check fails the test when the sentinel directory gained, lost or changed
// anything.
func (s sentinel) check(t testing.TB) {
	t.Helper()
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		t.Fatalf("sentinel dir: %v", err)
	}
	if len(ents) != 1 || ents[0].Name() != "target" {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("sentinel dir %s holds %v, want only target", s.dir, names)
	}
	fi, err := os.Lstat(s.file)
	if err != nil {
		t.Fatalf("sentinel file: %v", err)
	}
	b, _ := os.ReadFile(s.file)
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o644 || string(b) != sentinelContent {
		t.Errorf("sentinel file changed: %v %q", fi.Mode(), b)
	}
}

// listTree returns every path under dir, relative, sorted (dir itself
// excluded). Symlinks are not followed.
func listTree(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	sort.Strings(out)
	return out
}

// onlyEntries fails the test unless dir's direct entries are exactly names.
func onlyEntries(t testing.TB, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	must(t, err)
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	sort.Strings(names)
	if strings.Join(got, "\x00") != strings.Join(names, "\x00") {
		t.Errorf("%s holds %q, want exactly %q", dir, got, names)
	}
}
