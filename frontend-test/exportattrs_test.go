//go:build integration

package frontendtest

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// TestClientAttributes builds with the attributes real clients send
// (buildx's prefer-image-digest, buildinfo-attrs and oci-artifact,
// BuildKit's tests' attest:*) and one no client sends: the build passes,
// the unknown one with a warning, as stock passes them all through; a
// typo of a known key fails naming it; the vertex has stock's name.
func TestClientAttributes(t *testing.T) {
	d := startDaemon(t, lade, "")
	ctx := contextDir(t, mainDockerfile, nil)
	tarPath := filepath.Join(t.TempDir(), "out.tar")
	out := d.mustBuild(t, ctx, "--output", "type=oci,dest="+tarPath+
		",prefer-image-digest=true,buildinfo-attrs=true,oci-artifact=false,attest:provenance=mode=min,x-lade-unknown=1,source-date-epoch=")
	mustContain(t, "progress", out, "exporting to oci image format", "exporting with lade", `WARN: oci exporter: attribute "x-lade-unknown"`)
	if strings.Contains(out, `"prefer-image-digest"`) || strings.Contains(out, `"attest:provenance"`) {
		t.Errorf("a warning for an attribute clients send:\n%s", out)
	}
	openLayoutTar(t, tarPath).verify(t)

	out, err := d.build(t, ctx, "--output", "type=oci,dest="+tarPath+",compresion=zstd")
	if err == nil || !strings.Contains(out, `did you mean \"compression\"`) && !strings.Contains(out, `did you mean "compression"`) {
		t.Fatalf("a typo of compression: %v\n%s", err, out)
	}
}

// TestEstargz: compression=estargz gives gzip layers with eStargz's TOC
// annotations in the manifest, the annotation keys stock writes.
func TestEstargz(t *testing.T) {
	ctx := contextDir(t, mainDockerfile, nil)
	keys := func(kind string) string {
		l := ociBuild(t, startDaemon(t, kind, ""), ctx, ",compression=estargz,oci-mediatypes=true")
		img := l.verify(t)[0]
		var out []string
		for _, ld := range img.Manifest.Layers {
			var k []string
			for a := range ld.Annotations {
				k = append(k, a)
			}
			out = append(out, fmt.Sprint(len(k), ld.MediaType, ld.Annotations["containerd.io/snapshot/stargz/toc.digest"] != ""))
		}
		return strings.Join(out, "; ")
	}
	got := keys(lade)
	if !strings.Contains(got, "true") {
		t.Fatalf("no eStargz TOC annotation in lade's layers: %s", got)
	}
	if want := keys(stock); got != want {
		t.Fatalf("layer annotations:\n lade  %s\n stock %s", got, want)
	}
}

// TestStockCompat: lade-buildkitd --stock-compat (empty layers kept, stock's
// gzip bytes) gives stock buildkitd's image, digest for digest (layers, config,
// manifest), for the same reproducible build.
func TestStockCompat(t *testing.T) {
	ctx := contextDir(t, mainDockerfile, nil)
	l := ociBuild(t, startDaemon(t, lade, "", "--stock-compat"), ctx, ",rewrite-timestamp=true", epochOpt...)
	s := ociBuild(t, startDaemon(t, stock, ""), ctx, ",rewrite-timestamp=true", epochOpt...)
	li, si := l.verify(t)[0], s.verify(t)[0]
	blobsOf := func(img []digest.Digest) string { return fmt.Sprint(img) }
	var lb, sb []digest.Digest
	for _, d := range li.Manifest.Layers {
		lb = append(lb, d.Digest)
	}
	for _, d := range si.Manifest.Layers {
		sb = append(sb, d.Digest)
	}
	if len(sb) != mainLayers+1 || blobsOf(lb) != blobsOf(sb) {
		t.Fatalf("layer blobs:\n lade  %v\n stock %v", lb, sb)
	}
	if fmt.Sprint(li.Config.RootFS.DiffIDs) != fmt.Sprint(si.Config.RootFS.DiffIDs) {
		t.Fatalf("diffIDs:\n lade  %v\n stock %v", li.Config.RootFS.DiffIDs, si.Config.RootFS.DiffIDs)
	}
	lc, sc := l.rawConfig(t), s.rawConfig(t)
	for k := range sc {
		if string(lc[k]) != string(sc[k]) {
			t.Errorf("config %q:\n lade  %s\n stock %s", k, lc[k], sc[k])
		}
	}
	if len(lc) != len(sc) {
		t.Errorf("config keys: lade %d, stock %d", len(lc), len(sc))
	}
	if li.Manifest.Config.Digest != si.Manifest.Config.Digest {
		t.Errorf("config digest: lade %s, stock %s", li.Manifest.Config.Digest, si.Manifest.Config.Digest)
	}
	if l.root.Digest != s.root.Digest {
		t.Errorf("manifest digest: lade %s, stock %s\n lade  %s\n stock %s", l.root.Digest, s.root.Digest, l.blob(t, l.root), s.blob(t, s.root))
	}
}
