//go:build integration

package buildkit

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/diff"
	"github.com/containerd/containerd/v2/core/mount"
	ctdarchive "github.com/containerd/containerd/v2/pkg/archive"
	"github.com/containerd/containerd/v2/plugins/diff/walking"
	"github.com/lade-build/lade/exporter/archive/archivetest"
	bkoverlay "github.com/moby/buildkit/util/overlay"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

// TestDifferXattrsAsBuildKit: files labelled as on an SELinux host (a real
// security.selinux xattr, which root may set without SELinux), with user.*
// and trusted.* xattrs and a file capability: lade's Differ writes the tar
// BuildKit's overlayfs differ writes (only security.capability kept), and
// walking the trees the one containerd's walking differ writes, so the
// diffIDs are stock's.
func TestDifferXattrsAsBuildKit(t *testing.T) {
	if unix.Geteuid() != 0 {
		t.Fatal("run as root: the differs mount snapshots and set security.* xattrs")
	}
	ctx := context.Background()
	lower, upper := overlayLayer(t, "mkdir -p etc; echo a > etc/a", "mkdir -p app; echo bin > app/bin; echo b > etc/b; ln -s bin app/link")
	upperdir, err := bkoverlay.GetUpperdir(lower, upper)
	if err != nil {
		t.Fatal(err)
	}
	label := []byte("system_u:object_r:container_file_t:s0\x00")
	capability := []byte{1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	for _, p := range []string{"etc", "etc/b", "app", "app/bin", "app/link"} {
		f := filepath.Join(upperdir, p)
		if err := unix.Lsetxattr(f, "security.selinux", label, 0); err != nil {
			t.Fatalf("label %s: %v", p, err)
		}
		if p != "app/link" {
			for k, v := range map[string]string{"user.note": "n", "trusted.t": "admin"} {
				if err := unix.Lsetxattr(f, k, []byte(v), 0); err != nil {
					t.Fatalf("xattr %s on %s: %v", k, p, err)
				}
			}
		}
	}
	if err := unix.Lsetxattr(filepath.Join(upperdir, "app/bin"), "security.capability", capability, 0); err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	if err := bkoverlay.WriteUpperdir(ctx, &want, upperdir, lower); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(want.Bytes(), []byte("security.capability")) || bytes.Contains(want.Bytes(), []byte("security.selinux")) {
		t.Fatal("BuildKit's tar should keep security.capability and drop security.selinux: the fixture does not exercise what it should")
	}
	copied := bindOfMerged(t, upper)
	var walked bytes.Buffer
	err = mount.WithReadonlyTempMount(ctx, lower, func(l string) error {
		return mount.WithReadonlyTempMount(ctx, copied, func(u string) error {
			return ctdarchive.WriteDiff(ctx, &walked, l, u)
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	cs := archivetest.NewStore(t)
	d := NewDiffer(cs, walking.NewWalkingDiff(cs))
	for _, tc := range []struct {
		name  string
		upper []mount.Mount
		want  []byte
	}{
		{"overlay", upper, want.Bytes()},
		{"walk", copied, walked.Bytes()},
	} {
		desc, err := d.Compare(ctx, lower, tc.upper, diff.WithMediaType(ocispecs.MediaTypeImageLayer))
		if err != nil {
			t.Fatal(err)
		}
		got, err := content.ReadBlob(ctx, cs, desc)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, tc.want) {
			t.Errorf("%s: lade's tar (%d bytes, security.selinux kept: %v) is not BuildKit's (%d bytes)",
				tc.name, len(got), bytes.Contains(got, []byte("security.selinux")), len(tc.want))
		}
	}
}
