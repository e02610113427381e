package cache_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/containerd/v2/pkg/archive"
	"github.com/lade-build/lade/cache"
	"github.com/lade-build/lade/cache/cachetest"
	"golang.org/x/sys/unix"
)

// TestChangesOnlyCapabilityXattr: files labelled as on an SELinux host
// (security.selinux, set for real: root may set it on ext4 and tmpfs
// without SELinux) and carrying user.* xattrs and a file capability give,
// with OnlyCapabilityXattr, containerd's archive.WriteDiff bytes (what
// BuildKit's differs write, so the diffIDs are stock's): only
// security.capability is kept. Without the option every xattr is kept.
func TestChangesOnlyCapabilityXattr(t *testing.T) {
	base := xattrDir(t)
	lower, upper := filepath.Join(base, "lower"), filepath.Join(base, "upper")
	mkdirs(t, lower, "etc")
	mkdirs(t, upper, "etc", "app")
	writeFile(t, filepath.Join(upper, "etc/conf"), "conf\n", 0o644)
	writeFile(t, filepath.Join(upper, "app/bin"), "bin\n", 0o755)
	must(t, os.Symlink("bin", filepath.Join(upper, "app/link")))
	labels := map[string]string{"user.note": "n"}
	if os.Geteuid() == 0 {
		labels["security.selinux"] = "system_u:object_r:container_file_t:s0\x00"
		labels["trusted.t"] = "admin"
	}
	for _, p := range []string{"etc", "etc/conf", "app", "app/bin"} {
		for k, v := range labels {
			must(t, unix.Lsetxattr(filepath.Join(upper, p), k, []byte(v), 0))
		}
	}
	if os.Geteuid() == 0 {
		if err := unix.Lsetxattr(filepath.Join(upper, "app/link"), "security.selinux", []byte("system_u:object_r:container_file_t:s0\x00"), 0); err != nil {
			t.Fatalf("label a symlink: %v", err)
		}
		capability := []byte{1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
		must(t, unix.Lsetxattr(filepath.Join(upper, "app/bin"), "security.capability", capability, 0))
	}
	fixTimes(t, lower)
	fixTimes(t, upper)
	var want bytes.Buffer
	if err := archive.WriteDiff(context.Background(), &want, lower, upper); err != nil {
		t.Fatal(err)
	}

	stock, err := cache.NewChangesRef("x:stock", walkDirs(lower, upper), cache.ChangesOptions{OnlyCapabilityXattr: true})
	must(t, err)
	got := cachetest.ReadDiff(t, stock, cache.DiffOptions{})
	if !bytes.Equal(got, want.Bytes()) {
		ge, _ := cachetest.ReadEntries(bytes.NewReader(got))
		we, _ := cachetest.ReadEntries(bytes.NewReader(want.Bytes()))
		cachetest.CompareEntries(t, "only security.capability", ge, we)
		t.Fatalf("OnlyCapabilityXattr: %d bytes, containerd wrote %d", len(got), want.Len())
	}

	all, err := cache.NewChangesRef("x:all", walkDirs(lower, upper), cache.ChangesOptions{})
	must(t, err)
	for _, e := range cachetest.Entries(t, all, cache.DiffOptions{}) {
		if e.Name == "etc/conf" && !equalMaps(e.Xattrs, labels) {
			t.Errorf("default: %s xattrs %q, want every one (%q)", e.Name, e.Xattrs, labels)
		}
	}
}
