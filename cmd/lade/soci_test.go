package main

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lade-build/lade/internal/testutil"
)

// TestExportSociInspect: lade export -o type=image,soci=true stores a
// SOCI-enabled image; lade inspect lists its one image (not the SOCI
// index) with the layer's zTOC and span count, and the store stays
// consistent.
func TestExportSociInspect(t *testing.T) {
	c := newRunner(t)
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(1, 2))
	noise := make([]byte, 3<<20)
	for i := range noise {
		noise[i] = byte(r.Uint32())
	}
	writeFile(t, filepath.Join(dir, "noise"), string(noise), 0o644)
	writeFile(t, filepath.Join(dir, "text"), strings.Repeat("some text\n", 300000), 0o644)
	c.ok("export", "--progress", "quiet", "-o", "type=image,name=soci:1,soci=true,soci-span-size=1048576,soci-min-layer-size=0", dir)
	out := c.inspect("soci:1")
	if len(out.Images) != 1 || len(out.Images[0].Layers) != 1 {
		t.Fatalf("inspect: %d images, want the one image (not its SOCI index): %+v", len(out.Images), out)
	}
	l := out.Images[0].Layers[0]
	if l.Ztoc == "" || l.ZtocSpans < 4 {
		t.Errorf("layer %s: zTOC %q with %d spans, want one of at least 4 spans at 1 MiB", l.Digest, l.Ztoc, l.ZtocSpans)
	}
	c.checkClean()
	c.ok("export", "--progress", "quiet", "-o", "type=image,name=plain:1", dir)
	if p := c.inspect("plain:1").Images[0].Layers[0]; p.Ztoc != "" || p.Digest != l.Digest {
		t.Errorf("plain export: layer %s zTOC %q, want the same blob %s without one", p.Digest, p.Ztoc, l.Digest)
	}
	c.fail("soci=true needs compression=gzip", "export", "-o", "type=image,name=z:1,soci=true,compression=zstd", dir)
	// --soci flags apply to every output; an output's own attribute wins.
	c.ok("export", "--progress", "quiet", "--soci", "--soci-min-layer-size", "0", "-o", "type=image,name=flag:1", "-o", "type=image,name=off:1,soci=false", dir)
	if f := c.inspect("flag:1").Images[0].Layers[0]; f.Ztoc == "" || f.ZtocSpans >= l.ZtocSpans {
		t.Errorf("--soci: zTOC %q of %d spans, want one of fewer than %d (4 MiB spans)", f.Ztoc, f.ZtocSpans, l.ZtocSpans)
	}
	if o := c.inspect("off:1").Images[0].Layers[0]; o.Ztoc != "" {
		t.Errorf("soci=false on the output: zTOC %s", o.Ztoc)
	}
}

// TestCommitSoci: lade commit --soci gives the new layer a zTOC built while
// it is compressed and the base layer (lade's gzip, stored) one read from
// its blob; the image unpacks and runs as without them.
func TestCommitSoci(t *testing.T) {
	testutil.RequireTool(t, "busybox")
	c := commitRunner(t)
	commitBusybox(t, c, "bb:1")
	rootfs := commitUnpack(t, c, "bb:1")
	writeFile(t, filepath.Join(rootfs, "etc/big"), strings.Repeat("a line of the new layer\n", 200000), 0o644)
	run := filepath.Join(t.TempDir(), "run")
	c.ok("commit", "--progress", "quiet", "--base", "bb:1", "--rootfs", rootfs, "--soci", "--soci-span-size", "1048576",
		"--soci-min-layer-size", "0", "--unpack", run, "app:1")
	img := c.inspect("app:1")
	if len(img.Images) != 1 || len(img.Images[0].Layers) != 2 {
		t.Fatalf("inspect: %+v, want one image of two layers", img)
	}
	for i, l := range img.Images[0].Layers {
		if l.Ztoc == "" || l.ZtocSpans < 1 {
			t.Errorf("layer %d (%s): no zTOC", i, l.Digest)
		}
	}
	if fi, err := os.Stat(filepath.Join(run, "etc/big")); err != nil || fi.Size() != 24*200000 {
		t.Errorf("unpacked /etc/big: %v, %v", fi, err)
	}
	c.fail("soci=true needs compression=gzip", "commit", "--base", "bb:1", "--rootfs", rootfs, "--soci", "--compression", "zstd", "app:2")
}
