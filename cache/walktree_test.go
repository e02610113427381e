package cache_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	cfs "github.com/containerd/continuity/fs"
	"github.com/lade-build/lade/cache"
)

// TestWalkTreeMatchesContinuity: WalkTree reports what continuity's
// single walk (fs.Changes against "") reports, entry for entry: kind,
// path, name, mode, size, modification time and the whole stat (but the
// access time, which the first walk updates), on the
// golden trees (every kind of entry), a tree larger than a getdents
// buffer, an empty directory and a symlink to a directory (no entries).
func TestWalkTreeMatchesContinuity(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("run as root: the golden trees have device nodes, owners and trusted xattrs")
	}
	lower, upper := tarBytesTrees(t)
	wide := t.TempDir()
	for i := range 3000 {
		writeFile(t, filepath.Join(wide, fmt.Sprintf("a-rather-long-file-name-%05d", i)), "", 0o644)
	}
	link := filepath.Join(t.TempDir(), "link")
	must(t, os.Symlink(lower, link))
	for _, root := range []string{lower, upper, bigTree(t), wide, t.TempDir(), link} {
		want := walkRecord(t, func(ctx context.Context, fn cfs.ChangeFunc) error {
			return cfs.Changes(ctx, "", root, fn)
		})
		got := walkRecord(t, cache.WalkTree(root))
		if !slices.Equal(got, want) {
			t.Errorf("%s: WalkTree reported %d entries, continuity %d", root, len(got), len(want))
			for i := range min(len(got), len(want)) {
				if got[i] != want[i] {
					t.Fatalf("first difference at %d:\n got %s\nwant %s", i, got[i], want[i])
				}
			}
		}
	}
	if err := cache.WalkTree(filepath.Join(lower, "missing"))(context.Background(), nil); !os.IsNotExist(err) {
		t.Errorf("missing root: %v, want a not-exist error", err)
	}
}

// walkRecord renders every change walk reports.
func walkRecord(t *testing.T, walk cache.WalkFunc) []string {
	var out []string
	must(t, walk(context.Background(), func(k cfs.ChangeKind, p string, f os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		st := *f.Sys().(*syscall.Stat_t)
		st.Atim = syscall.Timespec{} // reading a directory sets it
		out = append(out, fmt.Sprintf("%v %q %q %v %d %v %v %+v", k, p, f.Name(), f.Mode(), f.Size(), f.ModTime(), f.IsDir(), st))
		return nil
	}))
	return out
}
