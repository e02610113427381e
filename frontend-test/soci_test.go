//go:build integration

package frontendtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/awslabs/soci-snapshotter/ztoc"
	"github.com/lade-build/lade/internal/testutil"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// sociDockerfile gives a busybox layer and a RUN layer of a few MiB of
// random and text data.
const sociDockerfile = `FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "/bin/busybox dd if=/dev/urandom of=/noise bs=1024 count=3072 && /bin/busybox seq 1 500000 > /seq && /bin/busybox mkdir /d && /bin/busybox ln -s /seq /d/link"]
`

// TestSociPush: buildctl through lade-buildkitd with soci=true pushes a
// SOCI-enabled image, each new layer's zTOC built while BuildKit's
// pipeline compressed it: an index whose image manifest names its SOCI index,
// which stands beside it (artifactType v2, manifest digest, platform) and
// lists a zTOC per layer that soci-snapshotter's ztoc package reads and
// extracts files with from the pushed layer blob.
func TestSociPush(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	d := startDaemon(t, lade, "")
	ctx := contextDir(t, sociDockerfile, nil)
	ref := reg.Host + "/lade/soci:v1"
	out := d.mustBuild(t, ctx, "--export-cache", "type=inline",
		"--output", "type=image,name="+ref+",push=true,registry.insecure=true,soci=true,soci-span-size=1048576,soci-min-layer-size=0")
	if strings.Contains(out, "building zTOC of stored layer") {
		t.Errorf("new layers' zTOCs were built by reading their blobs again, not while they were compressed:\n%s", out)
	}

	var idx ocispec.Index
	mustJSON(t, skopeo(t, "inspect", "--tls-verify=false", "--raw", "docker://"+ref), &idx)
	if idx.MediaType != ocispec.MediaTypeImageIndex || len(idx.Manifests) != 2 {
		t.Fatalf("pushed root: %s with %d manifests, want an index of the image and its SOCI index", idx.MediaType, len(idx.Manifests))
	}
	img, si := idx.Manifests[0], idx.Manifests[1]
	if si.ArtifactType != "application/vnd.amazon.soci.index.v2+json" || si.Annotations["com.amazon.soci.image-manifest-digest"] != img.Digest.String() ||
		si.Platform == nil || img.Platform == nil || si.Platform.Architecture != img.Platform.Architecture {
		t.Fatalf("SOCI index entry %+v does not point at image %s", si, img.Digest)
	}
	var m, sm ocispec.Manifest
	mustJSON(t, skopeo(t, "inspect", "--tls-verify=false", "--raw", "docker://"+reg.Host+"/lade/soci@"+img.Digest.String()), &m)
	mustJSON(t, skopeo(t, "inspect", "--tls-verify=false", "--raw", "docker://"+reg.Host+"/lade/soci@"+si.Digest.String()), &sm)
	if m.Annotations["com.amazon.soci.index-digest"] != si.Digest.String() {
		t.Fatalf("image manifest annotations %v do not name the SOCI index %s", m.Annotations, si.Digest)
	}
	if len(sm.Layers) != len(m.Layers) || len(m.Layers) != 2 {
		t.Fatalf("%d zTOCs for %d layers, want one per layer (2)", len(sm.Layers), len(m.Layers))
	}
	for i, z := range sm.Layers {
		layer := m.Layers[i]
		if z.Annotations["com.amazon.soci.image-layer-digest"] != layer.Digest.String() || z.Annotations["com.amazon.soci.image-layer-mediaType"] != layer.MediaType {
			t.Errorf("zTOC %d annotations %v, want layer %s", i, z.Annotations, layer.Digest)
		}
		toc, err := ztoc.Unmarshal(bytes.NewReader(registryBlob(t, reg.Host, "lade/soci", z.Digest.String())))
		if err != nil {
			t.Fatalf("zTOC %d: soci-snapshotter cannot read it: %v", i, err)
		}
		blob := registryBlob(t, reg.Host, "lade/soci", layer.Digest.String())
		sr := io.NewSectionReader(bytes.NewReader(blob), 0, int64(len(blob)))
		for _, f := range toc.FileMetadata {
			if f.Type != "reg" {
				continue
			}
			data, err := toc.ExtractFile(sr, f.Name)
			if err != nil || int64(len(data)) != int64(f.UncompressedSize) {
				t.Fatalf("layer %d: extract %s: %v (%d of %d bytes)", i, f.Name, err, len(data), f.UncompressedSize)
			}
			if f.Name == "seq" && !strings.HasPrefix(string(data), "1\n2\n3\n") {
				t.Errorf("layer %d: /seq extracted as %q...", i, data[:min(len(data), 16)])
			}
		}
		if i == 1 && toc.MaxSpanID < 3 {
			t.Errorf("RUN layer zTOC has %d spans, want several at a 1 MiB span size", toc.MaxSpanID+1)
		}
	}
}

// TestSociPushInlineCache is TestSociPush's image as a cache source: a
// fresh daemon importing the SOCI-enabled image's inline cache hits every
// step (the SOCI index beside the image does not get in the way).
func TestSociPushInlineCache(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	ctx := contextDir(t, sociDockerfile, nil)
	ref := reg.Host + "/lade/soci:cache"
	startDaemon(t, lade, "").mustBuild(t, ctx, "--export-cache", "type=inline",
		"--output", "type=image,name="+ref+",push=true,registry.insecure=true,soci=true,soci-min-layer-size=0")
	fresh := startDaemon(t, lade, fmt.Sprintf("[registry.%q]\n  http = true\n", reg.Host))
	out := fresh.mustBuild(t, ctx, "--import-cache", "type=registry,ref="+ref, "--output", "type=oci,dest="+filepath.Join(t.TempDir(), "x.tar"))
	steps := cachedSteps(out)
	if len(steps) != 2 {
		t.Fatalf("found %d steps, want 2:\n%s", len(steps), out)
	}
	for name, hit := range steps {
		if !hit {
			t.Errorf("step %s was not a cache hit:\n%s", name, out)
		}
	}
}

// TestSociStockBase: an image built FROM a base that the stock buildkitd
// pushed (its layers gzipped by Go's compress/gzip, not cut into lade's
// blocks) gets a zTOC for every base layer too, built by lade-buildkitd
// from one read of each stored blob, that soci-snapshotter's ztoc package
// extracts every file of the pushed blob with, in several spans.
func TestSociStockBase(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	base := reg.Host + "/lade/stock-base:v1"
	startDaemon(t, stock, "").mustBuild(t, contextDir(t, sociDockerfile, nil),
		"--output", "type=image,name="+base+",push=true,registry.insecure=true,oci-mediatypes=true")
	var bm ocispec.Manifest
	mustJSON(t, skopeo(t, "inspect", "--tls-verify=false", "--raw", "docker://"+base), &bm)
	if len(bm.Layers) != 2 {
		t.Fatalf("stock base image has %d layers, want 2", len(bm.Layers))
	}

	d := startDaemon(t, lade, fmt.Sprintf("[registry.%q]\n  http = true\n", reg.Host))
	ref := reg.Host + "/lade/soci-on-stock:v1"
	df := "FROM " + base + "\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox seq 1 200000 > /more\"]\n"
	out := d.mustBuild(t, contextDir(t, df, nil),
		"--output", "type=image,name="+ref+",push=true,registry.insecure=true,soci=true,soci-span-size=1048576,soci-min-layer-size=0")
	if strings.Count(out, "building zTOC of stored layer") < 2 || strings.Contains(out, "no zTOC") {
		t.Errorf("the stock base layers did not get their zTOCs from one read each:\n%s", out)
	}

	var idx ocispec.Index
	mustJSON(t, skopeo(t, "inspect", "--tls-verify=false", "--raw", "docker://"+ref), &idx)
	if len(idx.Manifests) != 2 {
		t.Fatalf("pushed index has %d manifests, want the image and its SOCI index", len(idx.Manifests))
	}
	var m, sm ocispec.Manifest
	repo := "lade/soci-on-stock"
	mustJSON(t, skopeo(t, "inspect", "--tls-verify=false", "--raw", "docker://"+reg.Host+"/"+repo+"@"+idx.Manifests[0].Digest.String()), &m)
	mustJSON(t, skopeo(t, "inspect", "--tls-verify=false", "--raw", "docker://"+reg.Host+"/"+repo+"@"+idx.Manifests[1].Digest.String()), &sm)
	if len(m.Layers) != 3 || len(sm.Layers) != 3 {
		t.Fatalf("%d zTOCs for %d layers, want one for each of 3", len(sm.Layers), len(m.Layers))
	}
	for i, z := range sm.Layers {
		layer := m.Layers[i]
		if i < 2 && layer.Digest != bm.Layers[i].Digest {
			t.Fatalf("layer %d is %s, not the stock base's blob %s", i, layer.Digest, bm.Layers[i].Digest)
		}
		if z.Annotations["com.amazon.soci.image-layer-digest"] != layer.Digest.String() {
			t.Fatalf("zTOC %d is for %s, want layer %s", i, z.Annotations["com.amazon.soci.image-layer-digest"], layer.Digest)
		}
		toc, err := ztoc.Unmarshal(bytes.NewReader(registryBlob(t, reg.Host, repo, z.Digest.String())))
		if err != nil {
			t.Fatalf("zTOC %d: soci-snapshotter cannot read it: %v", i, err)
		}
		blob := registryBlob(t, reg.Host, repo, layer.Digest.String())
		sr := io.NewSectionReader(bytes.NewReader(blob), 0, int64(len(blob)))
		files := 0
		for _, f := range toc.FileMetadata {
			if f.Type != "reg" {
				continue
			}
			data, err := toc.ExtractFile(sr, f.Name)
			if err != nil || int64(len(data)) != int64(f.UncompressedSize) {
				t.Fatalf("layer %d: extract %s: %v (%d of %d bytes)", i, f.Name, err, len(data), f.UncompressedSize)
			}
			if f.Name == "seq" && !strings.HasPrefix(string(data), "1\n2\n3\n") {
				t.Errorf("layer %d: /seq extracted as %q...", i, data[:min(len(data), 16)])
			}
			files++
		}
		if files == 0 {
			t.Errorf("layer %d: no regular file in its zTOC", i)
		}
		if i == 1 && toc.MaxSpanID < 3 {
			t.Errorf("stock RUN layer's zTOC has %d spans, want several at a 1 MiB span size", toc.MaxSpanID+1)
		}
	}
}

// registryBlob fetches a blob from a plain-HTTP registry.
func registryBlob(t *testing.T, host, repo, dgst string) []byte {
	t.Helper()
	resp, err := http.Get("http://" + host + "/v2/" + repo + "/blobs/" + dgst)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET blob %s: %v %s", dgst, err, resp.Status)
	}
	return b
}

func mustJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("%v\n%s", err, s)
	}
}
