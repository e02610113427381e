package exporter_test

import (
	"archive/tar"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/lade-build/lade/blobs"
	"github.com/lade-build/lade/cache"
	"github.com/lade-build/lade/exporter"
)

var update = flag.Bool("update", false, "rewrite testdata/golden.txt")

// goldenTree writes the layers of the golden image under dir: two
// directory snapshots (files, dirs, symlinks, hardlinks, a deletion), a
// tarball with an opaque directory, and a snapshot equal to the second
// (an empty layer).
func goldenTree(t *testing.T, dir string) (l1, l2, opq string) {
	t.Helper()
	l1, l2 = filepath.Join(dir, "l1"), filepath.Join(dir, "l2")
	for _, root := range []string{l1, l2} {
		mkfile(t, root, "etc/os-release", "NAME=golden\n", 0o644)
		mkfile(t, root, "bin/tool", "#!/bin/sh\necho tool\n", 0o755)
		mkfile(t, root, "var/lib/data", strings.Repeat("data ", 50000), 0o600)
		must(t, os.Symlink("tool", filepath.Join(root, "bin/alias")))
		must(t, os.Symlink("/etc/os-release", filepath.Join(root, "etc/abs-link")))
		must(t, os.Link(filepath.Join(root, "bin/tool"), filepath.Join(root, "bin/tool-hard")))
	}
	mkfile(t, l1, "tmp/gone", "deleted in l2", 0o644)
	mkfile(t, l2, "app/main", "main program", 0o755)
	mkfile(t, l2, "app/sub/setuid", "suid", os.ModeSetuid|0o755)
	opq = filepath.Join(dir, "opaque.tar")
	f, err := os.Create(opq)
	must(t, err)
	tw := tar.NewWriter(f)
	mtime := time.Unix(1600000000, 0)
	for _, h := range []*tar.Header{
		{Name: "app/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mtime, Format: tar.FormatPAX},
		{Name: "app/.wh..wh..opq", Typeflag: tar.TypeReg, Mode: 0o644, ModTime: mtime, Format: tar.FormatPAX},
		{Name: "app/replaced", Typeflag: tar.TypeReg, Mode: 0o644, Size: 3, ModTime: mtime, Format: tar.FormatPAX},
	} {
		must(t, tw.WriteHeader(h))
		if h.Size > 0 {
			_, err := tw.Write([]byte("new"))
			must(t, err)
		}
	}
	must(t, tw.Close())
	must(t, f.Close())
	if os.Getuid() == 0 {
		for _, root := range []string{l1, l2} {
			must(t, filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
				if err != nil {
					return err
				}
				if err := os.Lchown(p, 0, 0); err != nil || fi.Mode()&os.ModeSymlink != 0 {
					return err
				}
				return os.Chmod(p, fi.Mode()) // chown clears setuid
			}))
		}
	}
	return l1, l2, opq
}

func mkfile(t *testing.T, root, rel, data string, mode os.FileMode) {
	t.Helper()
	p := filepath.Join(root, rel)
	must(t, os.MkdirAll(filepath.Dir(p), 0o755))
	must(t, os.WriteFile(p, []byte(data), 0o644))
	must(t, os.Chmod(p, mode))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// goldenExport exports the golden tree and renders its digests.
func goldenExport(t *testing.T, dir string, procs, workers int) string {
	l1, l2, opq := goldenTree(t, dir)
	r1, err := cache.NewDirRef(l1, nil, cache.DirOptions{Description: "l1"})
	must(t, err)
	r2, err := cache.NewDirRef(l2, r1, cache.DirOptions{Description: "l2"})
	must(t, err)
	r3, err := cache.NewTarballRef(opq, r2, cache.TarballOptions{Description: "opaque"})
	must(t, err)
	r4, err := cache.NewDirRef(l2, r3, cache.DirOptions{Description: "unchanged", Lower: r2})
	must(t, err)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
	epoch := time.Unix(1700000000, 0)
	s := newStore(t)
	res, err := exporter.NewImageWriter(s).Commit(context.Background(), exporter.Source{Platforms: []exporter.PlatformSource{
		{Platform: "linux/amd64", Ref: r4},
	}}, exporter.Options{Epoch: &epoch, RewriteTimestamp: true, Concurrency: workers})
	must(t, err)
	verify(t, s, res.Descriptor)
	p := res.Platforms[0]
	var b strings.Builder
	fmt.Fprintf(&b, "root %s\nconfig %s\n", res.Descriptor.Digest, p.Config.Digest)
	for _, l := range p.Layers {
		fmt.Fprintf(&b, "layer %s diffID %s dropped=%v\n", l.Digest, l.DiffID, l.Dropped)
	}
	if !p.Layers[3].Dropped || p.Layers[3].DiffID != blobs.EmptyTarDiffID {
		t.Errorf("unchanged snapshot not dropped as empty: %+v", p.Layers[3])
	}
	return b.String()
}

// TestGolden: a generated tree exported with a fixed epoch gives the same
// digests on every run, for any GOMAXPROCS and worker bound, and the
// digests checked in (when run as root, as CI does: file owners are part
// of the layers).
func TestGolden(t *testing.T) {
	var first string
	for _, procs := range []int{1, 8} {
		for _, workers := range []int{1, 8} {
			got := goldenExport(t, t.TempDir(), procs, workers)
			if first == "" {
				first = got
			} else if got != first {
				t.Fatalf("GOMAXPROCS=%d workers=%d changed the digests:\n%s\nwant\n%s", procs, workers, got, first)
			}
		}
	}
	golden := filepath.Join("testdata", "golden.txt")
	if *update {
		must(t, os.WriteFile(golden, []byte(first), 0o644))
	}
	if os.Getuid() != 0 {
		t.Logf("not root: file owners differ from CI's, golden digests not compared")
		return
	}
	want, err := os.ReadFile(golden)
	must(t, err)
	if string(want) != first {
		t.Errorf("digests differ from %s (rerun with -update if the change is intended and documented):\n%s\nwant\n%s", golden, first, want)
	}
}
