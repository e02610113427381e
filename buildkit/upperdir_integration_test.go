//go:build integration

package buildkit

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/diff"
	"github.com/containerd/containerd/v2/core/mount"
	ctdarchive "github.com/containerd/containerd/v2/pkg/archive"
	"github.com/containerd/containerd/v2/plugins/diff/walking"
	cfs "github.com/containerd/continuity/fs"
	"github.com/lade-build/lade/cache"
	"github.com/lade-build/lade/exporter/archive/archivetest"
	bkoverlay "github.com/moby/buildkit/util/overlay"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

// upperdirBase is the lower tree of the hand-made upperdirs.
const upperdirBase = `mkdir -p d/sub same chmod opq xopq notdir.d
echo f > d/f; echo x > opq/x; echo x > xopq/x; echo gone > gone; echo n > notdir
ln -s d link; ln -s loop loop; ln -s target sym; ln -s target sym2
echo abc > samecontent; echo abc > diffcontent; : > empty; echo s > shared
touch -d @1500000000 samecontent diffcontent empty; touch -h -d @1500000000 sym sym2`

// upperdirUpper is an upperdir written by hand (as overlayfs, BuildKit's
// merge snapshots or a foreign tool may leave one), relative to the
// upperdir, base being the lower tree: every case of BuildKit's overlay
// Changes but the failing ones.
const upperdirUpper = `mkdir -p d/sub same chmod link opq newopq xopq notdir
chmod 700 chmod; echo new > d/new; echo F > d/f; echo lx > link/x; echo lf > link/f
echo abc > samecontent; echo abd > diffcontent; : > empty
touch -d @1500000000 samecontent diffcontent empty
ln -s target sym; ln -s other2 sym2; touch -h -d @1500000000 sym sym2
mknod gone c 0 0; mknod nothing c 0 0; mknod null c 1 3; mkfifo fifo
echo o > opq/new; echo no > newopq/f; echo xo > xopq/new; echo y > notdir/y
ln "$BASE/shared" shared
mkdir deep; mkdir deep/er; echo z > deep/er/z`

// TestUpperdirWalkMatchesBuildKit: on hand-made upperdirs (whiteouts of
// present and absent entries, opaque directories by either xattr and over
// nothing, a directory over a symlink to a directory, over a file and over
// a symlink loop, unchanged and changed directories, files compared by
// content, symlinks by target, a file hard-linked to the lower tree,
// devices, redirect_dir), cache.UpperdirWalk reports the changes
// BuildKit's util/overlay.Changes reports (kind, path, lstat) or fails
// where it fails, and the Differ writes the tar BuildKit's overlay differ
// writes or, where that fails, the walking differ's BuildKit falls back to
// (or fails where both fail).
func TestUpperdirWalkMatchesBuildKit(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("run as root: the test makes whiteouts and trusted.* xattrs and mounts views")
	}
	root := t.TempDir()
	base := filepath.Join(root, "base")
	if err := os.Mkdir(base, 0o755); err != nil {
		t.Fatal(err)
	}
	sh(t, base, upperdirBase)
	newUpper := func(t *testing.T, script string, xattrs map[string]string) string {
		t.Helper()
		dir, err := os.MkdirTemp(root, "upper")
		if err != nil {
			t.Fatal(err)
		}
		sh(t, dir, "BASE="+base+"\n"+script)
		for pk, v := range xattrs {
			p, k, _ := strings.Cut(pk, ":")
			if err := unix.Lsetxattr(filepath.Join(dir, p), k, []byte(v), 0); err != nil {
				t.Fatalf("xattr %s on %s: %v", k, p, err)
			}
		}
		return dir
	}
	opaque := map[string]string{
		"opq:trusted.overlay.opaque": "y", "newopq:trusted.overlay.opaque": "y",
		"xopq:trusted.overlay.opaque": "x", "xopq:user.overlay.opaque": "y",
		"d/f:trusted.overlay.origin": "o",
	}
	for _, tc := range []struct {
		name   string
		script string
		xattrs map[string]string
		fails  bool
	}{
		{"every case", upperdirUpper, opaque, false},
		{"whiteout below a file", "mkdir notdir; mknod notdir/z c 0 0", nil, true},
		{"entry below a symlink loop", "mkdir loop; echo x > loop/x", nil, true},
		{"opaque over a file", "mkdir notdir; echo y > notdir/y", map[string]string{"notdir:trusted.overlay.opaque": "y"}, false},
		{"opaque below a file", "mkdir -p notdir/sub", map[string]string{"notdir/sub:trusted.overlay.opaque": "y"}, true},
		{"redirect_dir", "mkdir moved", map[string]string{"moved:trusted.overlay.redirect": "/d"}, true},
		{"empty", "", nil, false},
		{"metacopy", "echo data > mc", map[string]string{"mc:trusted.overlay.metacopy": ""}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			upperdir := newUpper(t, tc.script, tc.xattrs)
			ctx := context.Background()
			err := withView(ctx, root, upperdir, func(view string) error {
				want, wantErr := recordChanges(func(fn cfs.ChangeFunc) error {
					return bkoverlay.Changes(ctx, fn, upperdir, view, base)
				})
				got, gotErr := recordChanges(func(fn cfs.ChangeFunc) error {
					return cache.UpperdirWalk(upperdir, view, base)(ctx, fn)
				})
				if (wantErr != nil) != tc.fails {
					return fmt.Errorf("BuildKit's error %v: the fixture does not exercise what it should", wantErr)
				}
				if (gotErr != nil) != (wantErr != nil) {
					return fmt.Errorf("error %v, BuildKit's %v", gotErr, wantErr)
				}
				if got != want {
					return fmt.Errorf("changes:\n%s\nBuildKit's:\n%s", got, want)
				}
				if tc.name == "every case" && (!strings.Contains(want, "delete /gone") || !strings.Contains(want, "delete /opq/x")) {
					return fmt.Errorf("BuildKit's changes lack a deletion: the fixture does not exercise what it should:\n%s", want)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			compareUpperdirTar(t, base, upperdir)
		})
	}
}

// withView mounts BuildKit's view of upperdir (its only lower layer over
// an empty directory) and calls fn with it.
func withView(ctx context.Context, tmp, upperdir string, fn func(view string) error) error {
	empty, err := os.MkdirTemp(tmp, "empty")
	if err != nil {
		return err
	}
	view := []mount.Mount{{Type: "overlay", Source: "overlay", Options: []string{"lowerdir=" + upperdir + ":" + empty, "index=off"}}}
	return mount.WithTempMount(ctx, view, fn)
}

// recordChanges lists the changes walk reports, one line each: kind,
// path and the lstat fields a tar depends on.
func recordChanges(walk func(cfs.ChangeFunc) error) (string, error) {
	var b strings.Builder
	err := walk(func(k cfs.ChangeKind, p string, f os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %s", k, p)
		if f != nil {
			st := f.Sys().(*syscall.Stat_t)
			fmt.Fprintf(&b, " name=%s mode=%v size=%d mtime=%s dev=%d ino=%d nlink=%d uid=%d gid=%d rdev=%d",
				f.Name(), f.Mode(), f.Size(), f.ModTime().UTC().Format("2006-01-02T15:04:05.999999999"),
				st.Dev, st.Ino, st.Nlink, st.Uid, st.Gid, st.Rdev)
		}
		b.WriteByte('\n')
		return nil
	})
	return b.String(), err
}

// compareUpperdirTar checks that the Differ writes the tar BuildKit's
// overlay differ writes for the upperdir over base or, where that fails,
// what BuildKit falls back to, containerd's walking differ, and fails
// where both fail.
func compareUpperdirTar(t *testing.T, base, upperdir string) {
	t.Helper()
	ctx := context.Background()
	lower := []mount.Mount{{Type: "bind", Source: base, Options: []string{"ro", "rbind"}}}
	work := filepath.Join(filepath.Dir(upperdir), filepath.Base(upperdir)+".work")
	if err := os.Mkdir(work, 0o755); err != nil {
		t.Fatal(err)
	}
	upper := []mount.Mount{{Type: "overlay", Source: "overlay", Options: []string{
		"index=off", "workdir=" + work, "upperdir=" + upperdir, "lowerdir=" + base,
	}}}
	var want bytes.Buffer
	wantErr := bkoverlay.WriteUpperdir(ctx, &want, upperdir, lower)
	if wantErr != nil {
		t.Logf("BuildKit's overlay differ fails (%v): the walking differ's tar is expected", wantErr)
		want.Reset()
		wantErr = mount.WithReadonlyTempMount(ctx, lower, func(l string) error {
			return mount.WithReadonlyTempMount(ctx, upper, func(u string) error {
				return ctdarchive.WriteDiff(ctx, &want, l, u)
			})
		})
	}
	cs := archivetest.NewStore(t)
	desc, err := NewDiffer(cs, walking.NewWalkingDiff(cs)).Compare(ctx, lower, upper, diff.WithMediaType(ocispecs.MediaTypeImageLayer))
	if wantErr != nil {
		t.Logf("the walking differ fails too (%v)", wantErr)
		if err == nil {
			t.Fatalf("lade's differ succeeds where BuildKit's and the walking differ fail (%v)", wantErr)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	got, err := content.ReadBlob(ctx, cs, desc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("lade's tar (%d bytes) is not BuildKit's (%d bytes)", len(got), want.Len())
	}
}
