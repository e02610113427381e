package cache_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/archive"
	"github.com/lade-build/lade/cache"
	"github.com/lade-build/lade/cache/cachetest"
	"golang.org/x/sys/unix"
)

// TestDirMatchesContainerdWriteDiff checks that, for trees without xattrs
// other than security.capability, the diff is byte for byte containerd's
// archive.WriteDiff (hence BuildKit's diffIDs), with and without an epoch.
func TestDirMatchesContainerdWriteDiff(t *testing.T) {
	fx := cachetest.NewFixture(t, 0)
	extraLower, extraUpper := compatTrees(t)
	empty := t.TempDir()
	epoch := fx.Old.Add(time.Hour)
	for _, tc := range []struct {
		name, lower, upper string
	}{
		{"fixture bottom", "", fx.Lower},
		{"fixture top", fx.Lower, fx.Upper},
		{"extra bottom", "", extraLower},
		{"extra top", extraLower, extraUpper},
	} {
		for _, ep := range []*time.Time{nil, &epoch} {
			var parent cache.Ref
			if tc.lower != "" {
				p, err := cache.NewDirRef(tc.lower, nil, cache.DirOptions{})
				if err != nil {
					t.Fatal(err)
				}
				parent = p
			}
			r, err := cache.NewDirRef(tc.upper, parent, cache.DirOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got := cachetest.ReadDiff(t, r, cache.DiffOptions{Epoch: ep})
			lowers := []string{tc.lower}
			if tc.lower == "" {
				lowers = append(lowers, empty) // BuildKit diffs a base layer against an empty mount
			}
			for _, lower := range lowers {
				var want bytes.Buffer
				if err := archive.WriteDiff(context.Background(), &want, lower, tc.upper, archive.WithSourceDateEpoch(ep)); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want.Bytes()) {
					ge, _ := cachetest.ReadEntries(bytes.NewReader(got))
					we, _ := cachetest.ReadEntries(bytes.NewReader(want.Bytes()))
					cachetest.CompareEntries(t, tc.name, ge, we)
					t.Fatalf("%s (lower %q, epoch %v): %d bytes, containerd wrote %d", tc.name, lower, ep != nil, len(got), want.Len())
				}
			}
		}
	}
}

// compatTrees builds a lower and an upper tree with the changes the fixture
// lacks: mode-only change, a directory replaced by a file and back, a
// retargeted symlink, setuid/setgid bits and, as root, a device node and a
// file capability.
func compatTrees(t *testing.T) (lower, upper string) {
	base := t.TempDir()
	lower, upper = filepath.Join(base, "lower"), filepath.Join(base, "upper")
	for _, root := range []string{lower, upper} {
		mkdirs(t, root, "d2f/sub", "keep")
		writeFile(t, filepath.Join(root, "chmod"), "same\n", 0o644)
		writeFile(t, filepath.Join(root, "f2d"), "file\n", 0o644)
		writeFile(t, filepath.Join(root, "d2f/sub/x"), "x\n", 0o644)
		must(t, os.Symlink("a", filepath.Join(root, "sym")))
	}
	must(t, os.Chmod(filepath.Join(upper, "chmod"), 0o755))
	must(t, os.RemoveAll(filepath.Join(upper, "d2f")))
	writeFile(t, filepath.Join(upper, "d2f"), "now a file\n", 0o644)
	must(t, os.Remove(filepath.Join(upper, "f2d")))
	mkdirs(t, upper, "f2d")
	writeFile(t, filepath.Join(upper, "f2d/child"), "child\n", 0o644)
	must(t, os.Remove(filepath.Join(upper, "sym")))
	must(t, os.Symlink("b", filepath.Join(upper, "sym")))
	writeFile(t, filepath.Join(upper, "keep/suid"), "suid\n", 0o755)
	must(t, os.Chmod(filepath.Join(upper, "keep/suid"), 0o755|os.ModeSetuid))
	mkdirs(t, upper, "keep/sgid")
	must(t, os.Chmod(filepath.Join(upper, "keep/sgid"), 0o755|os.ModeSetgid))
	if os.Geteuid() == 0 {
		must(t, unix.Mknod(filepath.Join(upper, "keep/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
		capFile := filepath.Join(upper, "keep/ping")
		writeFile(t, capFile, "ping\n", 0o755)
		// VFS_CAP_REVISION_2 with CAP_NET_RAW permitted and effective.
		capability := []byte{1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
		must(t, unix.Lsetxattr(capFile, "security.capability", capability, 0))
	}
	return lower, upper
}

func TestDirWhiteouts(t *testing.T) {
	base := t.TempDir()
	lower, upper := filepath.Join(base, "lower"), filepath.Join(base, "upper")
	for _, root := range []string{lower, upper} {
		mkdirs(t, root, "a/sub", "c/deep", "d")
		writeFile(t, filepath.Join(root, "a/f"), "f\n", 0o644)
		writeFile(t, filepath.Join(root, "a/sub/g"), "g\n", 0o644)
		writeFile(t, filepath.Join(root, "b"), "b\n", 0o644)
		writeFile(t, filepath.Join(root, "c/deep/h"), "h\n", 0o644)
		writeFile(t, filepath.Join(root, "d/x"), "x\n", 0o644)
		writeFile(t, filepath.Join(root, "d/y"), "y\n", 0o644)
	}
	must(t, os.Remove(filepath.Join(upper, "b")))
	must(t, os.RemoveAll(filepath.Join(upper, "a/sub")))
	must(t, os.RemoveAll(filepath.Join(upper, "c")))
	// d deleted and recreated with other content: per-entry whiteouts.
	must(t, os.RemoveAll(filepath.Join(upper, "d")))
	mkdirs(t, upper, "d")
	writeFile(t, filepath.Join(upper, "d/z"), "z\n", 0o644)
	fixTimes(t, lower)
	fixTimes(t, upper)

	bottom, err := cache.NewDirRef(lower, nil, cache.DirOptions{})
	must(t, err)
	top, err := cache.NewDirRef(upper, bottom, cache.DirOptions{})
	must(t, err)
	var names []string
	for _, e := range cachetest.Entries(t, top, cache.DiffOptions{}) {
		names = append(names, e.Name)
		if strings.Contains(e.Name, ".wh.") && (e.Size != 0 || e.Type != '0' || !e.ModTime.Equal(time.Unix(0, 0))) {
			t.Errorf("whiteout %s", e)
		}
	}
	want := "a/ a/.wh.sub .wh.b .wh.c d/ d/.wh.x d/.wh.y d/z"
	if got := strings.Join(names, " "); got != want {
		t.Fatalf("entries %q, want %q", got, want)
	}
}

func TestDirXattrs(t *testing.T) {
	root := xattrDir(t)
	file, dir := filepath.Join(root, "file"), filepath.Join(root, "dir")
	writeFile(t, file, "data\n", 0o644)
	mkdirs(t, root, "dir")
	must(t, os.Symlink("file", filepath.Join(root, "link")))
	want := map[string]map[string]string{
		"file": {"user.b": "2", "user.a": "1\x00binary"},
		"dir/": {"user.dir": "d"},
		"link": nil,
	}
	must(t, unix.Lsetxattr(file, "user.b", []byte("2"), 0))
	must(t, unix.Lsetxattr(file, "user.a", []byte("1\x00binary"), 0))
	must(t, unix.Lsetxattr(dir, "user.dir", []byte("d"), 0))
	if os.Geteuid() == 0 {
		must(t, unix.Lsetxattr(file, "trusted.t", []byte("admin"), 0))
		want["file"]["trusted.t"] = "admin"
	}
	r, err := cache.NewDirRef(root, nil, cache.DirOptions{})
	must(t, err)
	entries := cachetest.Entries(t, r, cache.DiffOptions{})
	for _, e := range entries {
		if !equalMaps(e.Xattrs, want[e.Name]) {
			t.Errorf("%s: xattrs %q, want %q", e.Name, e.Xattrs, want[e.Name])
		}
	}
	if len(entries) != len(want) {
		t.Errorf("%d entries, want %d", len(entries), len(want))
	}
}

// xattrDir returns a directory on a filesystem with user xattrs: the test
// temporary directory, or one in /dev/shm (tmpfs) when it has none.
func xattrDir(t *testing.T) string {
	for _, parent := range []string{"", "/dev/shm"} {
		dir := t.TempDir()
		if parent != "" {
			var err error
			if dir, err = os.MkdirTemp(parent, "lade-xattr"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
		}
		err := unix.Setxattr(dir, "user.probe", []byte("1"), 0)
		if err == nil {
			must(t, unix.Removexattr(dir, "user.probe"))
			return dir
		}
		if !errors.Is(err, unix.ENOTSUP) {
			t.Fatalf("set user xattr in %s: %v", dir, err)
		}
	}
	t.Fatal("neither the test temporary directory nor /dev/shm supports user xattrs: run the tests with TMPDIR on ext4, xfs, btrfs or tmpfs")
	return ""
}

func TestDirErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	writeFile(t, file, "x", 0o644)
	missing := filepath.Join(dir, "missing")
	if _, err := cache.NewDirRef(missing, nil, cache.DirOptions{}); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing directory: %v", err)
	}
	if _, err := cache.NewDirRef(file, nil, cache.DirOptions{}); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("file: %v", err)
	}
	tarball, err := cache.NewTarballRef(file, nil, cache.TarballOptions{})
	must(t, err)
	// On a parent that is not a directory snapshot, the layer is the diff
	// against opts.Lower, or the whole tree without one.
	onTar, err := cache.NewDirRef(dir, tarball, cache.DirOptions{})
	must(t, err)
	if onTar.Parent() != cache.Ref(tarball) {
		t.Errorf("tarball parent lost: %v", onTar.Parent())
	}
	whole := cachetest.Entries(t, onTar, cache.DiffOptions{})
	if len(whole) != 1 || whole[0].Name != "file" {
		t.Errorf("diff on a tarball parent: %v, want the whole tree", whole)
	}
	lowerRef, err := cache.NewDirRef(dir, nil, cache.DirOptions{})
	must(t, err)
	same, err := cache.NewDirRef(dir, tarball, cache.DirOptions{Lower: lowerRef})
	must(t, err)
	if got := cachetest.Entries(t, same, cache.DiffOptions{}); len(got) != 0 {
		t.Errorf("diff against an identical lower: %v, want nothing", got)
	}
	var nilDir *cache.DirRef
	r, err := cache.NewDirRef(dir, nilDir, cache.DirOptions{})
	must(t, err)
	if r.Parent() != nil {
		t.Errorf("typed nil parent: Parent() = %v, want nil", r.Parent())
	}
}

func TestDirIDAndSize(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a"), "12345", 0o644)
	writeFile(t, filepath.Join(dir, "b"), "123", 0o644)
	must(t, os.Link(filepath.Join(dir, "a"), filepath.Join(dir, "hard")))
	must(t, os.Symlink("a", filepath.Join(dir, "sym")))
	r1, err := cache.NewDirRef(dir, nil, cache.DirOptions{})
	must(t, err)
	id := r1.ID()
	if !strings.HasPrefix(id, "dir:sha256:") || r1.ID() != id {
		t.Fatalf("ID %q", id)
	}
	if r1.Layer().Size() != 8 {
		t.Errorf("Size %d, want 8 (hard link counted once)", r1.Layer().Size())
	}
	r2, err := cache.NewDirRef(dir, nil, cache.DirOptions{})
	must(t, err)
	if r2.ID() != id {
		t.Errorf("same tree, IDs %s and %s", id, r2.ID())
	}
	// A metadata change (mtime only) changes the identity.
	must(t, os.Chtimes(filepath.Join(dir, "b"), time.Time{}, time.Unix(1, 0)))
	r3, err := cache.NewDirRef(dir, nil, cache.DirOptions{})
	must(t, err)
	if r3.ID() == id {
		t.Error("ID unchanged after an mtime change")
	}
	if r1.ID() != id {
		t.Error("a ref's ID changed after the tree did: it must be computed once")
	}
	// The parent's identity is part of the child's.
	child1, err := cache.NewDirRef(dir, r1, cache.DirOptions{})
	must(t, err)
	child3, err := cache.NewDirRef(dir, r3, cache.DirOptions{})
	must(t, err)
	if child1.ID() == child3.ID() || child1.ID() == r1.ID() {
		t.Error("a child's ID does not depend on its parent's")
	}
}

func TestDirMetadata(t *testing.T) {
	dir := t.TempDir()
	r, err := cache.NewDirRef(dir, nil, cache.DirOptions{})
	must(t, err)
	if want := "lade: directory " + filepath.Base(dir); r.Description() != want {
		t.Errorf("Description %q, want %q", r.Description(), want)
	}
	if !r.CreatedAt().IsZero() {
		t.Errorf("CreatedAt %s, want zero", r.CreatedAt())
	}
	if _, ok := r.Stored(); ok {
		t.Error("Stored() ok for a directory")
	}
	at := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	r, err = cache.NewDirRef(dir, nil, cache.DirOptions{Description: "RUN make", CreatedAt: at})
	must(t, err)
	if r.Description() != "RUN make" || !r.CreatedAt().Equal(at) || r.Layer() != r {
		t.Errorf("options not kept: %q %s", r.Description(), r.CreatedAt())
	}
	if got := cachetest.Entries(t, r, cache.DiffOptions{}); len(got) != 0 {
		t.Errorf("empty directory: %d entries", len(got))
	}
}

// fixTimes sets the times of every entry under root to one instant, so
// only content, mode and type changes show in a diff.
func fixTimes(t *testing.T, root string) {
	t.Helper()
	ts := []unix.Timespec{unix.NsecToTimespec(1e18), unix.NsecToTimespec(1e18)}
	must(t, filepath.WalkDir(root, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
	}))
}

func mkdirs(t *testing.T, root string, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		must(t, os.MkdirAll(filepath.Join(root, d), 0o755))
	}
}

func writeFile(t *testing.T, p, data string, mode os.FileMode) {
	t.Helper()
	must(t, os.WriteFile(p, []byte(data), mode))
	must(t, os.Chmod(p, mode))
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
