package reliability

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
)

// mountTmpfs mounts a tmpfs of size (mount's syntax, e.g. "8m") on a new
// directory and unmounts it when the test ends.
func mountTmpfs(t testing.TB, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmpfs")
	must(t, os.Mkdir(dir, 0o755))
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		var out []byte
		var err error
		for range 50 {
			if out, err = exec.Command("umount", dir).CombinedOutput(); err == nil {
				return
			}
			// containerd's local store leaks the descriptor of its fsverity
			// probe file (internal/fsverity.Enable never closes it) until
			// the garbage collector finalizes it: image.Open in this
			// process keeps the mount busy until then.
			runtime.GC()
			time.Sleep(20 * time.Millisecond)
		}
		t.Errorf("umount %s: %v\n%s", dir, err, out)
		_ = exec.Command("umount", "-l", dir).Run()
	})
	return dir
}

// TestDiskFull exports a 12 MiB layer (random data, uncompressed) into a
// store on an 8 MiB tmpfs: lade exits non-zero with one line saying there
// is no space left, names no image, and lade check finds no fault at all
// (the failed export aborted its ingest and released its lease) with no
// ingest directory left on disk. Once the tmpfs is grown to 256 MiB the
// same export succeeds and the store checks clean. Then a filler file
// takes every free block: an export fails the same way, lade check (on the
// full disk) finds nothing, and once the filler is removed the export
// succeeds. Then the destination side: an OCI tar and a docker archive
// written to a full 4 MiB tmpfs fail the same way and leave nothing in the
// destination directory (no partial file, no temp file); an OCI layout
// there gets no index.json and no partial blob; the store stays clean.
func TestDiskFull(t *testing.T) {
	layer := filepath.Join(t.TempDir(), "layer")
	writeRandom(t, filepath.Join(layer, "data"), 12<<20, 3)
	writeFile(t, filepath.Join(layer, "etc/conf"), "conf\n", 0o644)

	small := mountTmpfs(t, "8m")
	root := filepath.Join(small, "store")
	c := newCLI(t, root)
	export := []string{"export", "--progress", "quiet", "-o", "type=image,name=full:1,compression=uncompressed", layer}
	c.fail([]string{"no space left on device"}, export...)
	if names := c.images(); len(names) != 0 {
		t.Errorf("failed export left images %v", names)
	}
	if f := c.checkFaults(); len(f) != 0 {
		t.Errorf("lade check after ENOSPC: %v", f)
	}
	if n := len(ingestDirs(root)); n != 0 {
		t.Errorf("%d ingest directories left on disk", n)
	}

	if out, err := exec.Command("mount", "-o", "remount,size=256m", small).CombinedOutput(); err != nil {
		t.Fatalf("remount: %v\n%s", err, out)
	}
	c.ok(export...)
	c.checkClean()
	verifyImages(t, root, []string{"full:1"})

	// Full to the last block: a filler file takes the rest of the tmpfs.
	filler := filepath.Join(small, "filler")
	fillDisk(t, filler)
	writeFile(t, filepath.Join(layer, "etc/new"), "a new snapshot: the blob cache misses\n", 0o644)
	export2 := []string{"export", "--progress", "quiet", "-o", "type=image,name=full:2,compression=uncompressed", layer}
	c.fail([]string{"no space left on device"}, export2...)
	if f := c.checkFaults(); len(f) != 0 {
		t.Errorf("lade check on a full disk after ENOSPC: %v", f)
	}
	must(t, os.Remove(filler))
	c.ok(export2...)
	c.checkClean()
	verifyImages(t, root, []string{"full:1", "full:2"})

	// The destination is full: the store (on the larger tmpfs) is fine.
	destDir := mountTmpfs(t, "4m")
	dest := filepath.Join(destDir, "image.tar")
	c.fail([]string{"no space left on device", dest},
		"export", "--progress", "quiet", "-o", "type=oci,dest="+dest+",compression=uncompressed", layer)
	onlyEntries(t, destDir)
	c.fail([]string{"no space left on device"},
		"save", "--progress", "quiet", "full:1", "-o", "type=docker,dest="+dest)
	onlyEntries(t, destDir)
	layout := filepath.Join(destDir, "layout")
	r := c.run("save", "--progress", "quiet", "full:1", "-o", "type=oci,tar=false,dest="+layout)
	if r.code == 0 || !strings.Contains(r.stderr, "no space left on device") {
		t.Errorf("save to a full layout directory: want a no-space error\n%s", r)
	}
	t.Logf("left in the layout directory: %q", listTree(t, layout))
	layoutBlobsVerify(t, layout)
	if _, err := os.Stat(filepath.Join(layout, "index.json")); !os.IsNotExist(err) {
		t.Errorf("a layout that could not be written has an index.json (%v)", err)
	}
	c.checkClean()
	verifyImages(t, root, []string{"full:1", "full:2"})
}

// layoutBlobsVerify fails the test unless every file under the layout's
// blobs/sha256 is named after its content's digest: a failed write may
// leave whole blobs behind, never a partial one under a digest.
func layoutBlobsVerify(t testing.TB, layout string) {
	t.Helper()
	dir := filepath.Join(layout, "blobs", "sha256")
	ents, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return
	}
	must(t, err)
	for _, e := range ents {
		f, err := os.Open(filepath.Join(dir, e.Name()))
		must(t, err)
		got, err := digest.SHA256.FromReader(f)
		f.Close()
		must(t, err)
		if got.Encoded() != e.Name() {
			t.Errorf("layout blob %s holds content %s", e.Name(), got)
		}
	}
}

// fillDisk writes zeros to path until its file system is full.
func fillDisk(t testing.TB, path string) {
	t.Helper()
	f, err := os.Create(path)
	must(t, err)
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !strings.Contains(err.Error(), "no space left on device") {
				t.Fatalf("fill %s: %v", path, err)
			}
			break
		}
	}
	for n := 32 << 10; n > 0; n /= 2 { // the last partial blocks
		for {
			if _, err := f.Write(buf[:n]); err != nil {
				break
			}
		}
	}
}
