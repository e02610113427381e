package cache_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/archive"
	cfs "github.com/containerd/continuity/fs"
	"github.com/lade-build/lade/cache"
	"github.com/lade-build/lade/cache/cachetest"
)

// bigTree writes a tree with more entries than the read-ahead queue and
// more small files than its buffers, of sizes around the read-ahead limit
// (64 KiB), with symlinks, hard links and empty files.
func bigTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	sizes := []int{0, 1, 100, 4096, 64<<10 - 1, 64 << 10, 64<<10 + 1, 300 << 10}
	for d := range 12 {
		dir := filepath.Join(root, fmt.Sprintf("d%02d", d))
		if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		for i := range 60 {
			size := sizes[(d+i)%len(sizes)]
			data := bytes.Repeat([]byte{byte('a' + i%26), byte(d)}, size/2+1)[:size]
			p := filepath.Join(dir, fmt.Sprintf("f%03d", i))
			if i%7 == 0 {
				p = filepath.Join(dir, "sub", fmt.Sprintf("f%03d", i))
			}
			writeFile(t, p, string(data), 0o644)
		}
		if err := os.Symlink("f001", filepath.Join(dir, "link")); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(filepath.Join(dir, "f002"), filepath.Join(dir, "hard")); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// TestReadAheadMatchesContainerd: on a tree larger than every read-ahead
// bound, the diff is byte for byte containerd's WriteDiff, on its own and
// on top of a lower tree.
func TestReadAheadMatchesContainerd(t *testing.T) {
	lower := bigTree(t)
	upper := t.TempDir()
	if err := cfs.CopyDir(upper, lower); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"d03/f010", "d05/sub/f014", "d09/f061"} {
		writeFile(t, filepath.Join(upper, p), strings.Repeat("changed ", 9000), 0o600)
	}
	if err := os.RemoveAll(filepath.Join(upper, "d07")); err != nil {
		t.Fatal(err)
	}
	bottom, err := cache.NewDirRef(lower, nil, cache.DirOptions{})
	if err != nil {
		t.Fatal(err)
	}
	top, err := cache.NewDirRef(upper, bottom, cache.DirOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		r            cache.Ref
		lower, upper string
	}{{bottom, t.TempDir(), lower}, {top, lower, upper}} {
		got := cachetest.ReadDiff(t, tc.r, cache.DiffOptions{})
		var want bytes.Buffer
		if err := archive.WriteDiff(context.Background(), &want, tc.lower, tc.upper); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("%s: %d bytes, containerd wrote %d", tc.upper, len(got), want.Len())
		}
	}
}

// TestReadAheadShrunkFile: a file that lost bytes after the walk saw it
// fails the diff (its stat no longer matches the walk's), whether its
// content is read ahead (small) or streamed (large).
func TestReadAheadShrunkFile(t *testing.T) {
	for _, size := range []int{1000, 200 << 10} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			root := t.TempDir()
			p := filepath.Join(root, "f")
			writeFile(t, p, strings.Repeat("x", size), 0o644)
			fi, err := os.Lstat(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(p, int64(size/2)); err != nil {
				t.Fatal(err)
			}
			wantChangedFile(t, "test:shrunk", root, fi)
		})
	}
}

// TestReadAheadStops: a walk that fails after many entries, a file that
// fails for its reader, and a reader that stops reading early all end the
// diff with no goroutine left behind.
func TestReadAheadStops(t *testing.T) {
	root := bigTree(t)
	boom := errors.New("walk failed")
	var count int
	failing := func(ctx context.Context, write cache.WriteChanges) error {
		return write(root, func(ctx context.Context, fn cfs.ChangeFunc) error {
			count = 0
			return cfs.Changes(ctx, "", root, func(k cfs.ChangeKind, p string, f os.FileInfo, err error) error {
				if count++; count == 500 {
					return boom
				}
				return fn(k, p, f, err)
			})
		})
	}
	fi, err := os.Lstat(filepath.Join(root, "d00", "f001"))
	if err != nil {
		t.Fatal(err)
	}
	unreadable := func(ctx context.Context, write cache.WriteChanges) error {
		return write(root, func(ctx context.Context, fn cfs.ChangeFunc) error {
			return cfs.Changes(ctx, "", root, func(k cfs.ChangeKind, p string, f os.FileInfo, err error) error {
				if p == "/d04/f003" {
					f = fi // another inode: its reader refuses it
				}
				return fn(k, p, f, err)
			})
		})
	}
	before := runtime.NumGoroutine()
	if err := readChanges(t, "test:walk", failing); !errors.Is(err, boom) {
		t.Fatalf("error %v, want the walk's", err)
	}
	if err := readChanges(t, "test:reader", unreadable); err == nil || !strings.Contains(err.Error(), "changed while the diff was written") {
		t.Fatalf("error %v, want the reader's", err)
	}
	r, err := cache.NewChangesRef("test:early", walkDirs("", root), cache.ChangesOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := r.Diff(context.Background(), cache.DiffOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(rc, make([]byte, 100<<10)); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines after the diffs, %d before", n, before)
	}
}
