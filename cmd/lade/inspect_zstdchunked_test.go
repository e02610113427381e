package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/lade-build/lade/internal/testutil"
)

// TestInspectZstdChunked: lade commit --compression zstd:chunked writes
// a zstd:chunked layer on a gzip base; lade inspect names its TOC, and
// neither the gzip base layer nor a plain zstd layer has one.
func TestInspectZstdChunked(t *testing.T) {
	testutil.RequireTool(t, "busybox")
	c := commitRunner(t)
	commitBusybox(t, c, "bb:1")
	rootfs := commitUnpack(t, c, "bb:1")
	writeFile(t, filepath.Join(rootfs, "etc/greeting"), strings.Repeat("hello\n", 100), 0o644)
	c.ok("commit", "--progress", "quiet", "--base", "bb:1", "--rootfs", rootfs, "--compression", "zstd:chunked", "zc:1")
	c.ok("commit", "--progress", "quiet", "--base", "bb:1", "--rootfs", rootfs, "--compression", "zstd", "z:1")
	zc, z := c.inspect("zc:1").Images[0].Layers, c.inspect("z:1").Images[0].Layers
	if len(zc) != 2 || len(z) != 2 {
		t.Fatalf("%d and %d layers, want 2", len(zc), len(z))
	}
	if !strings.HasPrefix(zc[1].ZstdChunkedTOC.String(), "sha256:") || zc[1].MediaType != "application/vnd.oci.image.layer.v1.tar+zstd" {
		t.Errorf("zstd:chunked layer: TOC %q, media type %s", zc[1].ZstdChunkedTOC, zc[1].MediaType)
	}
	if zc[0].ZstdChunkedTOC != "" || z[1].ZstdChunkedTOC != "" {
		t.Errorf("gzip layer TOC %q, zstd layer TOC %q: want none", zc[0].ZstdChunkedTOC, z[1].ZstdChunkedTOC)
	}
}
