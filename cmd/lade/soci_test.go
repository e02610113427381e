package main

import (
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
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
}
