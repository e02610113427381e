//go:build integration

package frontendtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lade-build/lade/internal/testutil"
	zcheck "github.com/lade-build/lade/internal/testutil/zstdchunked"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// zstdChunkedDockerfile gives a busybox layer, a RUN layer with random,
// text, zero-filled, sparse, empty and long-named files, a hard link and a
// symlink, and a RUN layer of whiteouts.
const zstdChunkedDockerfile = `FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "B=/bin/busybox; L=/d/$($B printf 'a%.0s' $($B seq 1 90))/$($B printf 'b%.0s' $($B seq 1 90)); $B mkdir -p /d /gone $L && $B dd if=/dev/urandom of=/d/noise bs=1024 count=2048 && $B seq 1 300000 > /d/seq && $B dd if=/dev/zero of=/d/zeros bs=1024 count=64 && $B truncate -s 4M /d/sparse && $B echo tail >> /d/sparse && $B touch /d/empty /gone/x && $B ln /d/seq /d/seq-hardlink && $B ln -s seq /d/seq-link && $B echo long > $L/file-with-a-long-name"]
RUN ["/bin/busybox", "rm", "-r", "/gone", "/d/empty"]
`

// checkZstdChunkedLayers reads every layer of m with containers/storage's
// reader (zcheck.Check) and returns the file names of all layers.
func checkZstdChunkedLayers(t *testing.T, m ocispec.Manifest, blob func(ocispec.Descriptor) []byte) map[string]bool {
	t.Helper()
	if len(m.Layers) != 3 {
		t.Fatalf("%d layers, want 3", len(m.Layers))
	}
	names := map[string]bool{}
	for i, l := range m.Layers {
		if l.MediaType != ocispec.MediaTypeImageLayerZstd {
			t.Errorf("layer %d media type %s", i, l.MediaType)
		}
		toc, _, err := zcheck.Check(blob(l), l.Annotations)
		if err != nil {
			t.Fatalf("layer %d (%s, annotations %v): %v", i, l.Digest, l.Annotations, err)
		}
		for _, e := range toc.Entries {
			names[e.Name] = true
		}
	}
	return names
}

// TestZstdChunked: buildctl through lade-buildkitd with
// compression=zstd:chunked writes an OCI tar and pushes an image whose
// layers containers/storage's reader reads (TOC, each file and chunk alone,
// the tar-split); skopeo reads both. A build on top of the pushed image
// with force-compression keeps its zstd:chunked base layers as they are;
// with rewrite-timestamp (lade's own layer pipeline) the layers are
// zstd:chunked too.
func TestZstdChunked(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	d := startDaemon(t, lade, fmt.Sprintf("[registry.%q]\n  http = true\n", reg.Host))
	ctx := contextDir(t, zstdChunkedDockerfile, nil)

	ociTar := filepath.Join(t.TempDir(), "x.tar")
	d.mustBuild(t, ctx, "--output", "type=oci,dest="+ociTar+",name=lade/zc:v1,compression=zstd:chunked")
	skopeo(t, "inspect", "oci-archive:"+ociTar)
	l := openLayoutDir(t, extract(t, ociTar))
	l.verify(t)
	var m ocispec.Manifest
	mustJSON(t, string(l.blob(t, l.root)), &m)
	names := checkZstdChunkedLayers(t, m, func(d ocispec.Descriptor) []byte { return l.blob(t, d) })
	for _, want := range []string{"bin/busybox", "d/noise", "d/sparse", "d/zeros", "d/seq-hardlink", "d/seq-link", "-a-long-name", ".wh.gone", "d/.wh.empty"} {
		found := false
		for n := range names {
			found = found || strings.HasSuffix(strings.TrimPrefix(n, "/"), want)
		}
		if !found {
			t.Errorf("no TOC entry %s among %d", want, len(names))
		}
	}

	ref := reg.Host + "/lade/zc:v1"
	d.mustBuild(t, ctx, "--output", "type=image,name="+ref+",push=true,registry.insecure=true,compression=zstd:chunked")
	var pushed ocispec.Manifest
	mustJSON(t, skopeo(t, "inspect", "--tls-verify=false", "--raw", "docker://"+ref), &pushed)
	fetch := func(d ocispec.Descriptor) []byte { return registryBlob(t, reg.Host, "lade/zc", d.Digest.String()) }
	checkZstdChunkedLayers(t, pushed, fetch)
	skopeo(t, "copy", "--src-tls-verify=false", "docker://"+ref, "dir:"+filepath.Join(t.TempDir(), "copy"))

	child := contextDir(t, "FROM "+ref+"\nRUN [\"/bin/busybox\", \"touch\", \"/new\"]\n", nil)
	ref2 := reg.Host + "/lade/zc:v2"
	d.mustBuild(t, child, "--output", "type=image,name="+ref2+",push=true,registry.insecure=true,compression=zstd:chunked,force-compression=true")
	var top ocispec.Manifest
	mustJSON(t, skopeo(t, "inspect", "--tls-verify=false", "--raw", "docker://"+ref2), &top)
	if len(top.Layers) != 4 {
		t.Fatalf("child image has %d layers, want 4", len(top.Layers))
	}
	for i, base := range pushed.Layers {
		if top.Layers[i].Digest != base.Digest || top.Layers[i].Annotations[zcheckTOCKey] != base.Annotations[zcheckTOCKey] {
			t.Errorf("base layer %d: %s %v, want %s kept with its TOC annotation", i, top.Layers[i].Digest, top.Layers[i].Annotations, base.Digest)
		}
	}
	if _, _, err := zcheck.Check(fetch(top.Layers[3]), top.Layers[3].Annotations); err != nil {
		t.Errorf("new layer on the base: %v", err)
	}
	_ = os.Remove(ociTar)

	// rewrite-timestamp: lade's own pipeline clamps and compresses the layers.
	clamped := filepath.Join(t.TempDir(), "clamped.tar")
	d.mustBuild(t, ctx, "--output", "type=oci,dest="+clamped+",name=lade/zc:v3,compression=zstd:chunked,rewrite-timestamp=true,source-date-epoch=86400")
	lc := openLayoutDir(t, extract(t, clamped))
	lc.verify(t)
	var cm ocispec.Manifest
	mustJSON(t, string(lc.blob(t, lc.root)), &cm)
	checkZstdChunkedLayers(t, cm, func(d ocispec.Descriptor) []byte { return lc.blob(t, d) })
}

// zcheckTOCKey is the annotation naming a zstd:chunked layer's TOC digest.
const zcheckTOCKey = "io.github.containers.zstd-chunked.manifest-checksum"
