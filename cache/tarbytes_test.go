package cache_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cfs "github.com/containerd/continuity/fs"
	"github.com/lade-build/lade/cache"
	"golang.org/x/sys/unix"
)

// Tar digests of the trees of tarBytesTrees, written by the change writer
// as it was before the tar path was made cheaper (issue #17, item 4): the
// bytes of every layer tar must never change, whatever the code reading
// the files does. A change here is a change of every diffID lade and
// lade-buildkitd compute.
const (
	goldenBottom      = "sha256:da875e4bf4e9ddd4fce426dbe1cbe002981e5404f8c6c39973e0d825bdc16c97"
	goldenTop         = "sha256:9436d81b898f2d56b92bc5e75af1e173a12a621f9c2327ea37bccec46cbb0078"
	goldenTopEpoch    = "sha256:41c0756750f7a5fb97739015807d106a294bb61c4130f545581daba1b9888743"
	goldenBottomEpoch = "sha256:38dda05f5c7d64892aa4b3591644dc2de6f95be3fc74348174592f27806fa088"
)

// Times of the golden trees: entries unchanged in the top layer have
// tarOld, changed ones tarNew; both have a sub-second part (written
// truncated) and the epoch falls between them.
var (
	tarOld   = time.Unix(1600000000, 500_000_000)
	tarNew   = time.Unix(1700000000, 250_000_000)
	tarEpoch = time.Unix(1650000000, 0)
	// tarEarly is an epoch before every time of the trees.
	tarEarly = time.Unix(1500000000, 0)
)

// TestTarBytesGolden: on two trees with every kind of entry the writer
// handles (empty, small, read-ahead-sized, large and sparse files, hard
// links within and across directories and to unmodified names, relative,
// absolute, dangling and long symlinks, long and non-ASCII names, xattrs
// of every namespace with binary and large values, owners, setuid and
// sticky modes, character and block devices, FIFOs, sockets, deletions
// of files and directories), the layer tars have the digests the change
// writer had before it was optimised, whether the tree is read directly
// (DirRef) or through a read-only overlay view of it while the raw tree
// is walked (ChangesRef, as lade-buildkitd's overlay differ reads an
// upperdir), with and without an epoch.
func TestTarBytesGolden(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("run as root: the golden trees have device nodes, owners and trusted xattrs")
	}
	lower, upper := tarBytesTrees(t)
	bottom, err := cache.NewDirRef(lower, nil, cache.DirOptions{})
	must(t, err)
	top, err := cache.NewDirRef(upper, bottom, cache.DirOptions{})
	must(t, err)
	epoch, early := tarEpoch, tarEarly
	for _, tc := range []struct {
		name         string
		lower, upper string
		ref          cache.Ref
		epoch        *time.Time
		want         string
	}{
		{"bottom", "", lower, bottom, nil, goldenBottom},
		{"top", lower, upper, top, nil, goldenTop},
		{"top with epoch", lower, upper, top, &epoch, goldenTopEpoch},
		{"bottom with an early epoch", "", lower, bottom, &early, goldenBottomEpoch},
	} {
		got := tarDigest(t, tc.ref, tc.epoch)
		if got != tc.want {
			t.Errorf("%s: directory diff %s, want %s", tc.name, got, tc.want)
		}
		viewed := overlayView(t, tc.upper)
		r, err := cache.NewChangesRef("view:"+tc.name, func(ctx context.Context, write cache.WriteChanges) error {
			return write(viewed, func(ctx context.Context, fn cfs.ChangeFunc) error {
				return cfs.Changes(ctx, tc.lower, tc.upper, fn)
			})
		}, cache.ChangesOptions{})
		must(t, err)
		if got := tarDigest(t, r, tc.epoch); got != tc.want {
			t.Errorf("%s: read through an overlay view %s, want %s", tc.name, got, tc.want)
		}
	}
}

// tarDigest returns the sha256 of r's layer tar.
func tarDigest(t *testing.T, r cache.Ref, epoch *time.Time) string {
	t.Helper()
	b, err := readDiff(t, r, cache.DiffOptions{Epoch: epoch})
	must(t, err)
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// overlayView mounts a read-only overlay of dir (and an empty directory),
// which shows dir's inodes under the overlay's device, and returns its
// mount point; it is unmounted at the end of the test.
func overlayView(t testing.TB, dir string) string {
	t.Helper()
	empty, mnt := t.TempDir(), t.TempDir()
	if err := unix.Mount("overlay", mnt, "overlay", unix.MS_RDONLY, "lowerdir="+dir+":"+empty); err != nil {
		t.Fatalf("mount an overlay view of %s: %v", dir, err)
	}
	t.Cleanup(func() { _ = unix.Unmount(mnt, unix.MNT_DETACH) })
	return mnt
}

// tarBytesTrees writes the golden lower tree and the upper one (the lower
// with the top layer's changes) under a directory with xattr support.
func tarBytesTrees(t *testing.T) (lower, upper string) {
	base := xattrDir(t)
	lower, upper = filepath.Join(base, "lower"), filepath.Join(base, "upper")
	for _, root := range []string{lower, upper} {
		mkdirs(t, root, ".")
		goldenBase(t, root)
	}
	changed := goldenChanges(t, upper)
	for _, root := range []string{lower, upper} {
		goldenOwners(t, root)
		goldenXattrs(t, root)
	}
	stampTimes(t, lower, nil)
	stampTimes(t, upper, changed)
	return lower, upper
}

// goldenData is deterministic content of n bytes, different per seed.
func goldenData(n int, seed byte) string {
	b := make([]byte, n)
	x := uint32(seed) | 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return string(b)
}

// goldenBase writes the entries both trees share.
func goldenBase(t *testing.T, root string) {
	long := strings.Repeat("n", 120)
	deep := filepath.Join(strings.Repeat("deep-directory-name/", 9), long)
	mkdirs(t, root, "bin", "etc", "lib", "usr/share/doc", "tmp", "dev", "keep", "données", filepath.Dir(deep), "d2f/sub")
	for name, size := range map[string]int{
		"etc/empty": 0, "etc/small": 100, "bin/tool": 5000, "lib/blob": 200 << 10,
		"bin/edge-1": 64<<10 - 1, "bin/edge": 64 << 10, "bin/edge+1": 64<<10 + 1, "bin/big": 1<<20 + 3,
		"usr/share/doc/readme": 3000, "keep/same": 10, "keep/chmod": 20, long: 7, deep: 77,
		"données/ünïcode-名前": 11, "keep/retimed": 12, "keep/xattr": 13, "d2f/sub/x": 2, "f2d": 4,
	} {
		writeFile(t, filepath.Join(root, name), goldenData(size, byte(len(name)+size)), 0o644)
	}
	must(t, os.Chmod(filepath.Join(root, "bin/tool"), 0o755|os.ModeSetuid))
	must(t, os.Chmod(filepath.Join(root, "tmp"), 0o777|os.ModeSticky))
	must(t, os.Chmod(filepath.Join(root, "etc/small"), 0o600))
	must(t, os.Link(filepath.Join(root, "bin/tool"), filepath.Join(root, "bin/tool-hard")))
	must(t, os.Link(filepath.Join(root, "bin/tool"), filepath.Join(root, "usr/tool-other-dir")))
	must(t, os.Link(filepath.Join(root, "lib/blob"), filepath.Join(root, "lib/blob.1")))
	for link, target := range map[string]string{
		"bin/rel": "tool", "etc/abs": "/etc/passwd", "dangling": "nowhere/at/all",
		"longlink": strings.Repeat("target/", 30) + "end",
	} {
		must(t, os.Symlink(target, filepath.Join(root, link)))
	}
	// Sparse files: data in a hole, holes only (large and small).
	sparse := filepath.Join(root, "sparse")
	writeFile(t, sparse, "", 0o644)
	f, err := os.OpenFile(sparse, os.O_WRONLY, 0)
	must(t, err)
	_, err = f.WriteAt([]byte("middle of a hole"), 512<<10)
	must(t, err)
	must(t, f.Truncate(1<<20))
	must(t, f.Close())
	must(t, os.Truncate(writeEmpty(t, root, "sparse-holes"), 128<<10))
	must(t, os.Truncate(writeEmpty(t, root, "sparse-small"), 10<<10))
	must(t, unix.Mknod(filepath.Join(root, "dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(t, unix.Mknod(filepath.Join(root, "dev/loop"), unix.S_IFBLK|0o660, int(unix.Mkdev(7, 300))))
	must(t, unix.Mkfifo(filepath.Join(root, "dev/fifo"), 0o640))
	makeSocket(t, filepath.Join(root, "dev/sock"))
}

// writeEmpty creates an empty file and returns its path.
func writeEmpty(t *testing.T, root, name string) string {
	p := filepath.Join(root, name)
	writeFile(t, p, "", 0o644)
	return p
}

// makeSocket creates a unix socket at p, bound in a short directory
// (socket paths are limited to 108 bytes) and moved there.
func makeSocket(t *testing.T, p string) {
	dir, err := os.MkdirTemp("", "s")
	must(t, err)
	defer os.RemoveAll(dir)
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	must(t, err)
	defer unix.Close(fd)
	must(t, unix.Bind(fd, &unix.SockaddrUnix{Name: filepath.Join(dir, "s")}))
	must(t, os.Rename(filepath.Join(dir, "s"), p))
}

// goldenChanges applies the top layer's changes to root and returns the
// changed paths (their mtime is tarNew).
func goldenChanges(t *testing.T, root string) []string {
	j := func(p string) string { return filepath.Join(root, p) }
	must(t, os.Remove(j("etc/small")))
	must(t, os.RemoveAll(j("usr/share")))
	must(t, os.RemoveAll(j("d2f")))
	writeFile(t, j("d2f"), "now a file", 0o644)
	must(t, os.Remove(j("f2d")))
	mkdirs(t, root, "f2d")
	writeFile(t, j("f2d/child"), goldenData(70<<10, 9), 0o640)
	writeFile(t, j("bin/big"), goldenData(3<<20+5, 3), 0o755)
	must(t, os.Chmod(j("keep/chmod"), 0o700))
	must(t, os.Link(j("lib/blob"), j("lib/new-link"))) // a new name of unmodified ones: they are written as links to it
	must(t, os.Remove(j("bin/rel")))
	must(t, os.Symlink("edge", j("bin/rel")))
	writeFile(t, j("new-small"), goldenData(33, 4), 0o644)
	writeFile(t, j("new-empty"), "", 0o644)
	must(t, os.Link(j("new-small"), j("etc/new-hard")))
	must(t, unix.Mkfifo(j("keep/new-fifo"), 0o600))
	return []string{"etc", "usr", ".", "d2f", "f2d", "f2d/child", "bin/big", "keep/chmod", "lib",
		"bin", "bin/rel", "new-small", "new-empty", "etc/new-hard", "keep", "keep/new-fifo", "keep/retimed", "keep/xattr"}
}

// goldenOwners gives entries owners other than root.
func goldenOwners(t *testing.T, root string) {
	for p, id := range map[string]int{"etc/empty": 1000, "bin/rel": 2000, "données": 65534, "dev/fifo": 33, "keep/xattr": 70000} {
		if err := os.Lchown(filepath.Join(root, p), id, id+1); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
}

// goldenXattrs sets xattrs (after chown, which clears file capabilities).
func goldenXattrs(t *testing.T, root string) {
	capability := []byte{1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	for _, x := range []struct{ path, name, value string }{
		{"bin/tool", "security.capability", string(capability)},
		{"bin/tool", "user.b", "2"},
		{"bin/tool", "user.a", "1\x00binary\xff"},
		{"etc", "user.dir", "d"},
		{"bin/big", "user.large", goldenData(3000, 7)},
		{"bin/rel", "trusted.link", "on a symlink"},
		{"keep/xattr", "trusted.t", "admin"},
		{"lib/blob", "user.shared", "by every name"},
		{"sparse", "user.empty", ""},
	} {
		must(t, unix.Lsetxattr(filepath.Join(root, x.path), x.name, []byte(x.value), 0))
	}
	if strings.HasSuffix(root, "upper") {
		must(t, unix.Lsetxattr(filepath.Join(root, "keep/xattr"), "user.new", []byte("top"), 0))
	}
}

// stampTimes sets the times of every entry under root to tarOld, and of
// the changed paths to tarNew.
func stampTimes(t *testing.T, root string, changed []string) {
	at := func(p string, tm time.Time) {
		ts := []unix.Timespec{unix.NsecToTimespec(tm.UnixNano()), unix.NsecToTimespec(tm.UnixNano())}
		must(t, unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW))
	}
	must(t, filepath.WalkDir(root, func(p string, _ os.DirEntry, err error) error {
		if err == nil {
			at(p, tarOld)
		}
		return err
	}))
	for _, p := range changed {
		at(filepath.Join(root, p), tarNew)
	}
}
