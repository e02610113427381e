package exporter_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/platforms"
	"github.com/lade-build/lade/blobs"
	"github.com/lade-build/lade/cache"
	"github.com/lade-build/lade/exporter"
	"github.com/lade-build/lade/exporter/exportertest"
	"github.com/lade-build/lade/soci"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// sociRef is a layer of a few MiB of mixed text and noise.
func sociRef(id string, up *exportertest.MemRef, seed uint64) *exportertest.MemRef {
	r := rand.New(rand.NewPCG(seed, 3))
	files := map[string]string{"data/": ""}
	for i := range 4 {
		noise := make([]byte, 600<<10)
		for j := range noise {
			noise[j] = byte(r.Uint32())
		}
		files[fmt.Sprintf("data/noise%d", i)] = string(noise)
		files[fmt.Sprintf("data/text%d", i)] = strings.Repeat(fmt.Sprintf("text %d %d\n", i, r.IntN(99)), 90000)
	}
	ref := &exportertest.MemRef{RefID: id, Desc: "layer " + id, Files: files}
	if up != nil {
		ref.Up = up
	}
	return ref
}

func readJSONBlob(t *testing.T, s content.Store, d ocispec.Descriptor, v any) []byte {
	t.Helper()
	b, err := content.ReadBlob(context.Background(), s, d)
	if err != nil {
		t.Fatal(err)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// TestCommitSoci: each platform's image manifest names its SOCI index,
// which stands beside it in the index with the manifest's digest and
// platform and lists one zTOC per layer with the layer's digest and media
// type; small layers are left out by the minimum size.
func TestCommitSoci(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	small := &exportertest.MemRef{RefID: "small", Desc: "small", Files: map[string]string{"etc/": "", "etc/os": "x"}}
	amd := sociRef("amd", small, 1)
	arm := sociRef("arm", small, 2)
	created := time.Unix(1700000000, 0)
	opts := exporter.Options{Soci: true, SociSpanSize: 1 << 20, SociMinLayerSize: 64 << 10, Created: &created}
	res, err := exporter.NewImageWriter(s).Commit(ctx, exporter.Source{Platforms: []exporter.PlatformSource{
		{Platform: "linux/amd64", Ref: amd}, {Platform: "linux/arm64", Ref: arm},
	}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	var idx ocispec.Index
	readJSONBlob(t, s, res.Descriptor, &idx)
	if len(idx.Manifests) != 4 {
		t.Fatalf("index lists %d manifests, want 2 images and 2 SOCI indexes", len(idx.Manifests))
	}
	for i, pr := range res.Platforms {
		img, si := idx.Manifests[i], idx.Manifests[2+i]
		if si.ArtifactType != exporter.SociIndexArtifactType || si.MediaType != ocispec.MediaTypeImageManifest {
			t.Fatalf("entry %d: %s/%s, want a SOCI index", 2+i, si.MediaType, si.ArtifactType)
		}
		if si.Annotations[exporter.AnnotationSociManifestDigest] != img.Digest.String() || si.Platform == nil || platforms.Format(*si.Platform) != platforms.Format(*img.Platform) {
			t.Errorf("SOCI index %d: annotations %v platform %v; want manifest %s, platform %v", i, si.Annotations, si.Platform, img.Digest, img.Platform)
		}
		var m ocispec.Manifest
		readJSONBlob(t, s, img, &m)
		if m.Annotations[exporter.AnnotationSociIndexDigest] != si.Digest.String() {
			t.Errorf("image manifest %d annotations %v do not name SOCI index %s", i, m.Annotations, si.Digest)
		}
		for _, l := range m.Layers {
			if len(l.Annotations) != 0 {
				t.Errorf("layer %s carries annotations %v into the manifest", l.Digest, l.Annotations)
			}
		}
		var sm ocispec.Manifest
		readJSONBlob(t, s, si, &sm)
		if sm.Config.MediaType != exporter.SociIndexArtifactType || string(readJSONBlob(t, s, sm.Config, nil)) != "{}" {
			t.Errorf("SOCI index config %v", sm.Config)
		}
		if len(sm.Layers) != 1 || len(m.Layers) != 2 {
			t.Fatalf("%d zTOCs for %d layers, want 1 for 2 (the small one has none)", len(sm.Layers), len(m.Layers))
		}
		z := sm.Layers[0]
		if z.Annotations[exporter.AnnotationSociLayerDigest] != m.Layers[1].Digest.String() ||
			z.Annotations[exporter.AnnotationSociLayerMediaType] != m.Layers[1].MediaType || z.MediaType != "application/octet-stream" {
			t.Errorf("zTOC descriptor %+v does not name layer %s", z, m.Layers[1].Digest)
		}
		spans, ok := soci.Spans(readJSONBlob(t, s, z, nil))
		if !ok || spans < 4 || pr.Layers[1].Ztoc != z.Digest || pr.Layers[1].ZtocSpans != spans || pr.Layers[0].Ztoc != "" {
			t.Errorf("zTOC has %d spans (%v); results %+v", spans, ok, pr.Layers)
		}
	}
	again, err := exporter.NewImageWriter(s).Commit(ctx, exporter.Source{Platforms: []exporter.PlatformSource{
		{Platform: "linux/amd64", Ref: amd}, {Platform: "linux/arm64", Ref: arm},
	}}, opts)
	if err != nil || again.Descriptor.Digest != res.Descriptor.Digest {
		t.Errorf("second commit: %v, %s; want the same index %s", err, again.Descriptor.Digest, res.Descriptor.Digest)
	}
}

// TestCommitSociSinglePlatform: one platform with a zTOC still gets an
// index, so its SOCI index has somewhere to stand; without one it stays a
// single manifest.
func TestCommitSociSinglePlatform(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	src := exporter.Source{Platforms: []exporter.PlatformSource{{Platform: "linux/amd64", Ref: sociRef("one", nil, 4)}}}
	res, err := exporter.NewImageWriter(s).Commit(ctx, src, exporter.Options{Soci: true, SociMinLayerSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Descriptor.MediaType != ocispec.MediaTypeImageIndex || res.Platforms[0].SociIndex == nil {
		t.Fatalf("root %s, SOCI index %v; want an index with one", res.Descriptor.MediaType, res.Platforms[0].SociIndex)
	}
	res, err = exporter.NewImageWriter(s).Commit(ctx, src, exporter.Options{Soci: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Descriptor.MediaType != ocispec.MediaTypeImageManifest || res.Platforms[0].SociIndex != nil {
		t.Errorf("a layer under the 10 MiB default got a SOCI index: root %s", res.Descriptor.MediaType)
	}
}

// TestSociOptionsValidate: soci needs lade's gzip and OCI media types.
func TestSociOptionsValidate(t *testing.T) {
	for _, o := range []exporter.Options{
		{Soci: true, Compression: blobs.Compression{Type: blobs.Zstd}},
		{Soci: true, Compression: blobs.Compression{Type: blobs.GzipCompat}},
		{Soci: true, Docker: true},
		{Soci: true, SociSpanSize: -1},
		{SociSpanSize: 1 << 20},
	} {
		if err := o.Validate(); err == nil {
			t.Errorf("options %+v accepted", o)
		}
	}
	if err := (exporter.Options{Soci: true, SociSpanSize: 1 << 20, SociMinLayerSize: -1}).Validate(); err != nil {
		t.Error(err)
	}
}

// TestCommitSociStoredLayer: a stored gzip layer (a base layer, or one
// BuildKit's pipeline compressed) gets a zTOC from one read of its blob,
// the same one the layer gets when computed with soci.
func TestCommitSociStoredLayer(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	w := exporter.NewImageWriter(s)
	ref := sociRef("computed", nil, 5)
	opts := exporter.Options{Soci: true, SociSpanSize: 1 << 20, SociMinLayerSize: -1}
	first, err := w.Commit(ctx, exporter.Source{Platforms: []exporter.PlatformSource{{Platform: "linux/amd64", Ref: ref}}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	lr := first.Platforms[0].Layers[0]
	stored := &exportertest.MemRef{RefID: "stored", Desc: "base", Files: ref.Files, Blob: &cache.Blob{
		Descriptor: ocispec.Descriptor{MediaType: lr.MediaType, Digest: lr.Digest, Size: lr.Size}, DiffID: lr.DiffID}}
	second, err := w.Commit(ctx, exporter.Source{Platforms: []exporter.PlatformSource{{Platform: "linux/amd64", Ref: stored, BaseLayers: 1}}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	got := second.Platforms[0].Layers[0]
	if got.Status != blobs.StatusReused || got.Ztoc != lr.Ztoc || got.ZtocSpans != lr.ZtocSpans || got.Ztoc == "" {
		t.Errorf("stored layer: status %s, zTOC %s (%d spans); want reused with %s (%d spans)", got.Status, got.Ztoc, got.ZtocSpans, lr.Ztoc, lr.ZtocSpans)
	}
	if stored.Diffs.Load() != 0 {
		t.Errorf("the stored layer was diffed %d times, want 0 (its blob is read instead)", stored.Diffs.Load())
	}
}
