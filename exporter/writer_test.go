package exporter_test

import (
	"context"
	"encoding/json"
	"math/rand"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/lade-build/lade/blobs"
	"github.com/lade-build/lade/cache"
	"github.com/lade-build/lade/exporter"
	"github.com/lade-build/lade/exporter/exportertest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func newStore(t *testing.T) content.Store {
	t.Helper()
	s, err := local.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// chain builds base <- empty <- app refs.
func chain(prefix string) (*exportertest.MemRef, *exportertest.MemRef, *exportertest.MemRef) {
	base := &exportertest.MemRef{RefID: prefix + "base", Desc: "base", Files: map[string]string{"bin/": "", "bin/sh": "#!sh"}}
	empty := &exportertest.MemRef{RefID: prefix + "empty", Up: base, Desc: "RUN true"}
	app := &exportertest.MemRef{RefID: prefix + "app", Up: empty, Desc: "COPY app", Files: map[string]string{"app": strings.Repeat("x", 5000)}}
	return base, empty, app
}

func verify(t *testing.T, s content.Store, d ocispec.Descriptor) []exportertest.Image {
	t.Helper()
	imgs, err := exportertest.Verify(context.Background(), s, d)
	if err != nil {
		t.Fatalf("oracle: %v", err)
	}
	return imgs
}

func TestCommitMultiPlatform(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	_, _, amd := chain("a-")
	_, _, arm := chain("b-")
	cfg := []byte(`{"config":{"Env":["A=1"]},"history":[{"created_by":"base"},{"created_by":"RUN true"},{"created_by":"ENV A=1","empty_layer":true},{"created_by":"COPY app"}]}`)
	res, err := exporter.NewImageWriter(s).Commit(ctx, exporter.Source{Platforms: []exporter.PlatformSource{
		{Platform: "linux/amd64", Ref: amd, Config: cfg},
		{Platform: "linux/arm64", Ref: arm},
	}}, exporter.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Descriptor.MediaType != ocispec.MediaTypeImageIndex {
		t.Fatalf("root %s, want an index", res.Descriptor.MediaType)
	}
	imgs := verify(t, s, res.Descriptor)
	if len(imgs) != 2 {
		t.Fatalf("%d images", len(imgs))
	}
	if n := len(imgs[0].Manifest.Layers); n != 2 {
		t.Errorf("amd64 has %d layers, want 2 (empty dropped)", n)
	}
	if h := imgs[0].Config.History; len(h) != 4 || !h[1].EmptyLayer || h[0].EmptyLayer || h[3].EmptyLayer {
		t.Errorf("history not normalized: %+v", h)
	}
	if imgs[0].Config.Config.Env[0] != "A=1" {
		t.Errorf("config not kept: %+v", imgs[0].Config.Config)
	}
	if imgs[1].Config.Config.WorkingDir != "/" || imgs[1].Config.Architecture != "arm64" {
		t.Errorf("default config wrong: %+v", imgs[1].Config)
	}
	lr := res.Platforms[0].Layers
	if len(lr) != 3 || !lr[1].Dropped || lr[0].Dropped || lr[0].Status != blobs.StatusNew {
		t.Errorf("layer results: %+v", lr)
	}
}

func TestCommitDockerAndCompressions(t *testing.T) {
	for _, tc := range []struct {
		name   string
		docker bool
		comp   blobs.Type
		layer  string
	}{
		{"oci-gzip", false, blobs.Gzip, ocispec.MediaTypeImageLayerGzip},
		{"oci-zstd", false, blobs.Zstd, ocispec.MediaTypeImageLayerZstd},
		{"oci-none", false, blobs.Uncompressed, ocispec.MediaTypeImageLayer},
		{"docker-gzip-compat", true, blobs.GzipCompat, blobs.MediaTypeDockerLayerGzip},
		{"docker-none", true, blobs.Uncompressed, blobs.MediaTypeDockerLayer},
		// Docker's zstd media type, as BuildKit writes it (TestBuildExportZstd).
		{"docker-zstd", true, blobs.Zstd, blobs.MediaTypeDockerLayerZstd},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			_, _, app := chain("c-")
			res, err := exporter.NewImageWriter(s).Commit(context.Background(),
				exporter.Source{Platforms: []exporter.PlatformSource{{Ref: app}}},
				exporter.Options{Docker: tc.docker, Compression: blobs.Compression{Type: tc.comp}})
			if err != nil {
				t.Fatal(err)
			}
			imgs := verify(t, s, res.Descriptor)
			for _, l := range imgs[0].Manifest.Layers {
				if l.MediaType != tc.layer {
					t.Errorf("layer media type %s, want %s", l.MediaType, tc.layer)
				}
				if tc.docker && len(l.Annotations) > 0 {
					t.Errorf("docker layer with annotations %v", l.Annotations)
				}
				if _, ok := l.Annotations[blobs.LabelUncompressed]; ok {
					t.Errorf("internal annotation leaked into the manifest")
				}
			}
		})
	}
}

func TestCommitReusesCachedBlobs(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	base, _, app := chain("d-")
	bc := &blobs.MemoryCache{}
	w := exporter.NewImageWriter(s)
	src := exporter.Source{Platforms: []exporter.PlatformSource{{Ref: app}}}
	first, err := w.Commit(ctx, src, exporter.Options{Cache: bc})
	if err != nil {
		t.Fatal(err)
	}
	second, err := exporter.NewImageWriter(s).Commit(ctx, src, exporter.Options{Cache: bc})
	if err != nil {
		t.Fatal(err)
	}
	if base.Diffs.Load() != 1 || app.Diffs.Load() != 1 {
		t.Errorf("layers read %d and %d times, want once each", base.Diffs.Load(), app.Diffs.Load())
	}
	for _, l := range second.Platforms[0].Layers {
		if l.Status != blobs.StatusReused {
			t.Errorf("layer %s status %s, want reused", l.Digest, l.Status)
		}
	}
	// Created differs (now) unless an epoch is set; the layers must not.
	if first.Platforms[0].Layers[2].Digest != second.Platforms[0].Layers[2].Digest {
		t.Errorf("layer digests differ across exports")
	}
	// Another level is another key: the layer is read again.
	lvl := 1
	if _, err := w.Commit(ctx, src, exporter.Options{Cache: bc, Compression: blobs.Compression{Type: blobs.Gzip, Level: &lvl}}); err != nil {
		t.Fatal(err)
	}
	if app.Diffs.Load() != 2 {
		t.Errorf("a different level reused a blob made for another")
	}
}

func TestCommitDeterministic(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	big := make([]byte, 3<<20)
	for i := range big {
		big[i] = byte('a' + rng.Intn(8))
	}
	epoch := time.Unix(1700000000, 0)
	var roots []string
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, conc := range []int{1, 8} {
		runtime.GOMAXPROCS(conc)
		for _, comp := range []blobs.Type{blobs.Gzip, blobs.Zstd} {
			s := newStore(t)
			ref := &exportertest.MemRef{RefID: "big", Files: map[string]string{"big": string(big)}}
			res, err := exporter.NewImageWriter(s).Commit(context.Background(),
				exporter.Source{Platforms: []exporter.PlatformSource{{Platform: "linux/amd64", Ref: ref}}},
				exporter.Options{Concurrency: conc, Epoch: &epoch, Compression: blobs.Compression{Type: comp}})
			if err != nil {
				t.Fatal(err)
			}
			verify(t, s, res.Descriptor)
			roots = append(roots, string(comp)+" "+res.Descriptor.Digest.String())
		}
	}
	if roots[0] != roots[2] || roots[1] != roots[3] {
		t.Errorf("digests depend on the worker bound: %v", roots)
	}
}

func TestCommitStoredLayers(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	_, _, app := chain("e-")
	res, err := exporter.NewImageWriter(s).Commit(ctx, exporter.Source{Platforms: []exporter.PlatformSource{{Ref: app}}}, exporter.Options{})
	if err != nil {
		t.Fatal(err)
	}
	imgs := verify(t, s, res.Descriptor)
	l0 := imgs[0].Manifest.Layers[0]
	stored := &exportertest.MemRef{RefID: "blob:" + l0.Digest.String(), Files: map[string]string{"bin/": "", "bin/sh": "#!sh"},
		Blob: &cache.Blob{Descriptor: l0, DiffID: imgs[0].DiffIDs[0]}}
	top := &exportertest.MemRef{RefID: "top", Up: stored, Files: map[string]string{"new": "n"}}
	src := exporter.Source{Platforms: []exporter.PlatformSource{{Ref: top}}}
	res2, err := exporter.NewImageWriter(s).Commit(ctx, src, exporter.Options{Compression: blobs.Compression{Type: blobs.Zstd}})
	if err != nil {
		t.Fatal(err)
	}
	verify(t, s, res2.Descriptor)
	if l := res2.Platforms[0].Layers[0]; l.Status != blobs.StatusReused || l.Digest != l0.Digest || stored.Diffs.Load() != 0 {
		t.Errorf("stored layer not reused as is: %+v (read %d times)", l, stored.Diffs.Load())
	}
	res3, err := exporter.NewImageWriter(s).Commit(ctx, src, exporter.Options{Compression: blobs.Compression{Type: blobs.Zstd}, ForceCompression: true})
	if err != nil {
		t.Fatal(err)
	}
	verify(t, s, res3.Descriptor)
	if l := res3.Platforms[0].Layers[0]; l.Status != blobs.StatusConverted || l.MediaType != ocispec.MediaTypeImageLayerZstd || l.DiffID != imgs[0].DiffIDs[0] {
		t.Errorf("forced compression did not convert: %+v", l)
	}
}

func TestCommitEpochAndAnnotations(t *testing.T) {
	s := newStore(t)
	_, _, app := chain("f-")
	epoch := time.Unix(1000, 0)
	res, err := exporter.NewImageWriter(s).Commit(context.Background(), exporter.Source{
		Platforms: []exporter.PlatformSource{{Platform: "linux/arm64/v8", Ref: app}},
		Annotations: exporter.Annotations{
			Manifest:        map[string]map[string]string{"": {"a": "1"}},
			Index:           map[string]string{"i": "2"},
			IndexDescriptor: map[string]string{"d": "3"},
		},
	}, exporter.Options{Epoch: &epoch, RewriteTimestamp: true, Index: true})
	if err != nil {
		t.Fatal(err)
	}
	imgs := verify(t, s, res.Descriptor)
	if !res.Created.Equal(epoch) || !imgs[0].Config.Created.Equal(epoch) {
		t.Errorf("created %v / %v, want the epoch", res.Created, imgs[0].Config.Created)
	}
	if imgs[0].Manifest.Annotations["a"] != "1" || res.Descriptor.Annotations["d"] != "3" {
		t.Errorf("annotations missing: %v %v", imgs[0].Manifest.Annotations, res.Descriptor.Annotations)
	}
	var idx ocispec.Index
	b, _ := content.ReadBlob(context.Background(), s, res.Descriptor)
	_ = json.Unmarshal(b, &idx)
	if idx.Annotations["i"] != "2" {
		t.Errorf("index annotations missing")
	}
	for _, l := range res.Platforms[0].Layers {
		if !l.EpochApplied {
			t.Errorf("epoch not applied to %s", l.Digest)
		}
	}
}

// TestCommitIndexAnnotationForPlatform: an index annotation given for a
// platform (annotation-index[PLATFORM] in BuildKit's syntax) lands on the
// index when the image has that platform, and fails when it has not, as
// in BuildKit.
func TestCommitIndexAnnotationForPlatform(t *testing.T) {
	s := newStore(t)
	_, _, app := chain("ip-")
	src := func(platform string) exporter.Source {
		return exporter.Source{
			Platforms: []exporter.PlatformSource{{Platform: "linux/arm64", Ref: app}},
			Annotations: exporter.Annotations{
				Manifest: map[string]map[string]string{platform: nil},
				Index:    map[string]string{"i": "1"},
			},
		}
	}
	res, err := exporter.NewImageWriter(s).Commit(context.Background(), src("linux/arm64/v8"), exporter.Options{Index: true})
	if err != nil {
		t.Fatal(err)
	}
	verify(t, s, res.Descriptor)
	var idx ocispec.Index
	b, _ := content.ReadBlob(context.Background(), s, res.Descriptor)
	if err := json.Unmarshal(b, &idx); err != nil || idx.Annotations["i"] != "1" {
		t.Errorf("index annotations %v (%v), want i=1", idx.Annotations, err)
	}
	if _, err := exporter.NewImageWriter(s).Commit(context.Background(), src("linux/s390x"), exporter.Options{Index: true}); err == nil || !strings.Contains(err.Error(), "not exported") {
		t.Errorf("an index annotation for a platform the image lacks: %v, want an error", err)
	}
}

// TestCommitSingleManifestDescriptor checks that a single-platform image's
// root descriptor carries the manifest-descriptor annotations, as
// BuildKit's does (they reach index.json), but no platform.
func TestCommitSingleManifestDescriptor(t *testing.T) {
	s := newStore(t)
	_, _, app := chain("md-")
	res, err := exporter.NewImageWriter(s).Commit(context.Background(), exporter.Source{
		Platforms:   []exporter.PlatformSource{{Platform: "linux/amd64", Ref: app}},
		Annotations: exporter.Annotations{ManifestDescriptor: map[string]map[string]string{"": {"md": "1"}}},
	}, exporter.Options{})
	if err != nil {
		t.Fatal(err)
	}
	verify(t, s, res.Descriptor)
	if res.Descriptor.Annotations["md"] != "1" || res.Descriptor.Platform != nil {
		t.Errorf("root descriptor annotations %v, platform %v", res.Descriptor.Annotations, res.Descriptor.Platform)
	}
}

func TestCommitCreatedOption(t *testing.T) {
	s := newStore(t)
	_, _, app := chain("h-")
	at := time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)
	src := exporter.Source{Platforms: []exporter.PlatformSource{{Ref: app}}}
	var roots []string
	for i := 0; i < 2; i++ {
		res, err := exporter.NewImageWriter(s).Commit(context.Background(), src, exporter.Options{Created: &at})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Created.Equal(at) {
			t.Errorf("created %v, want %v", res.Created, at)
		}
		roots = append(roots, res.Descriptor.Digest.String())
	}
	if roots[0] != roots[1] {
		t.Errorf("two commits with one Created differ: %v", roots)
	}
}

// TestCommitDockerManifestAnnotations checks manifest annotations with
// Docker media types: written into the manifest, as BuildKit does; the
// descriptor ones are an error, as in BuildKit.
func TestCommitDockerManifestAnnotations(t *testing.T) {
	s := newStore(t)
	_, _, app := chain("dm-")
	w := exporter.NewImageWriter(s)
	src := exporter.Source{
		Platforms:   []exporter.PlatformSource{{Platform: "linux/amd64", Ref: app}},
		Annotations: exporter.Annotations{Manifest: map[string]map[string]string{"": {"a": "1"}}},
	}
	res, err := w.Commit(context.Background(), src, exporter.Options{Docker: true})
	if err != nil {
		t.Fatal(err)
	}
	if imgs := verify(t, s, res.Descriptor); imgs[0].Manifest.Annotations["a"] != "1" {
		t.Errorf("manifest annotations %v", imgs[0].Manifest.Annotations)
	}
	src.Annotations = exporter.Annotations{ManifestDescriptor: map[string]map[string]string{"": {"a": "1"}}}
	if _, err := w.Commit(context.Background(), src, exporter.Options{Docker: true}); err == nil {
		t.Error("manifest-descriptor annotations accepted with Docker media types")
	}
}
