// Package archivetest builds small images by hand in a containerd content
// store and runs the external tools (skopeo, umoci) that validate what
// lade's file destinations write. It is for tests only.
package archivetest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/log"
	"github.com/containerd/platforms"
	"github.com/lade-build/lade/exporter/archive"
	"github.com/lade-build/lade/internal/testutil"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Spec describes an image to build.
type Spec struct {
	// Platforms lists "os/arch[/variant]" strings; empty means linux/amd64.
	Platforms []string
	// Index makes the root an index even for one platform (it always is
	// for several).
	Index bool
	// Docker selects Docker schema 2 media types instead of OCI.
	Docker bool
	// Layers is the number of layers per platform; 0 means 2.
	Layers int
	// Seed varies the random layer content.
	Seed uint64
}

// Layer is one built layer.
type Layer struct {
	Desc   ocispec.Descriptor
	DiffID digest.Digest
	// Files maps each regular file's path to its content.
	Files map[string][]byte
}

// Platform is one built platform image.
type Platform struct {
	Platform ocispec.Platform
	Manifest ocispec.Descriptor
	Config   ocispec.Descriptor
	Layers   []Layer
}

// Image is a built image.
type Image struct {
	// Root is the index (or the single manifest).
	Root      ocispec.Descriptor
	Platforms []Platform
}

// NewStore returns a containerd local content store in a test directory
// that keeps labels (in memory), so tests can check GC labels.
func NewStore(t testing.TB) content.Store {
	t.Helper()
	log.SetLevel("error") // the local store warns about fsverity on ext4
	cs, err := local.NewLabeledStore(t.TempDir(), testutil.NewLabelStore())
	if err != nil {
		t.Fatalf("new content store: %v", err)
	}
	return cs
}

// Build writes the image spec describes into cs and returns it.
func Build(t testing.TB, cs content.Ingester, spec Spec) Image {
	t.Helper()
	if len(spec.Platforms) == 0 {
		spec.Platforms = []string{"linux/amd64"}
	}
	if spec.Layers == 0 {
		spec.Layers = 2
	}
	rng := rand.New(rand.NewPCG(spec.Seed, 0x1ade))
	var img Image
	for _, ps := range spec.Platforms {
		img.Platforms = append(img.Platforms, buildPlatform(t, cs, spec, ps, rng))
	}
	if len(img.Platforms) == 1 && !spec.Index {
		img.Root = img.Platforms[0].Manifest
		img.Root.Platform = nil
		return img
	}
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex}
	if spec.Docker {
		idx.MediaType = archive.MediaTypeDockerManifestList
	}
	for _, p := range img.Platforms {
		idx.Manifests = append(idx.Manifests, p.Manifest)
	}
	img.Root = Put(t, cs, idx.MediaType, mustJSON(t, idx))
	return img
}

// buildPlatform writes one platform's layers, config and manifest.
func buildPlatform(t testing.TB, cs content.Ingester, spec Spec, ps string, rng *rand.Rand) Platform {
	plat, err := platforms.Parse(ps)
	if err != nil {
		t.Fatalf("parse platform %q: %v", ps, err)
	}
	p := Platform{Platform: plat}
	layerType, configType, manifestType := ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageConfig, ocispec.MediaTypeImageManifest
	if spec.Docker {
		layerType, configType, manifestType = archive.MediaTypeDockerLayerGzip, archive.MediaTypeDockerConfig, archive.MediaTypeDockerManifest
	}
	var diffIDs []digest.Digest
	for i := range spec.Layers {
		l := buildLayer(t, cs, layerType, strings.ReplaceAll(ps, "/", "-"), i, rng)
		p.Layers = append(p.Layers, l)
		diffIDs = append(diffIDs, l.DiffID)
	}
	cfg := ocispec.Image{
		Platform: plat,
		Config:   ocispec.ImageConfig{Env: []string{"PATH=/usr/bin:/bin"}, Cmd: []string{"/bin/sh"}},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: diffIDs},
	}
	for i := range diffIDs {
		cfg.History = append(cfg.History, ocispec.History{CreatedBy: fmt.Sprintf("layer %d", i)})
	}
	p.Config = Put(t, cs, configType, mustJSON(t, cfg))
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: manifestType, Config: p.Config}
	for _, l := range p.Layers {
		m.Layers = append(m.Layers, l.Desc)
	}
	p.Manifest = Put(t, cs, manifestType, mustJSON(t, m))
	p.Manifest.Platform = &plat
	return p
}

// buildLayer writes a gzip layer of a few random files, some of them
// incompressible, under etc/lade/ and data/.
func buildLayer(t testing.TB, cs content.Ingester, mediaType, tag string, i int, rng *rand.Rand) Layer {
	files := map[string][]byte{
		fmt.Sprintf("etc/lade/%s-%d.txt", tag, i): []byte(fmt.Sprintf("layer %d of %s: %x\n", i, tag, rng.Uint64())),
		fmt.Sprintf("data/%s-%d.bin", tag, i):     randomBytes(rng, 8<<10+rng.IntN(8<<10)),
	}
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, dir := range []string{"data/", "etc/", "etc/lade/"} {
		writeEntry(t, tw, &tar.Header{Name: dir, Typeflag: tar.TypeDir, Mode: 0o755}, nil)
	}
	for _, name := range []string{fmt.Sprintf("data/%s-%d.bin", tag, i), fmt.Sprintf("etc/lade/%s-%d.txt", tag, i)} {
		writeEntry(t, tw, &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(files[name]))}, files[name])
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(raw.Bytes())
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return Layer{Desc: Put(t, cs, mediaType, gz.Bytes()), DiffID: digest.FromBytes(raw.Bytes()), Files: files}
}

// writeEntry writes one tar entry.
func writeEntry(t testing.TB, tw *tar.Writer, h *tar.Header, data []byte) {
	if err := tw.WriteHeader(h); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(data); err != nil {
		t.Fatal(err)
	}
}

// randomBytes returns n bytes from rng.
func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// Put writes data as a blob of mediaType into cs and returns its descriptor.
func Put(t testing.TB, cs content.Ingester, mediaType string, data []byte) ocispec.Descriptor {
	t.Helper()
	d := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}
	if err := content.WriteBlob(context.Background(), cs, d.Digest.String(), bytes.NewReader(data), d); err != nil {
		t.Fatalf("write blob: %v", err)
	}
	return d
}

// mustJSON encodes v or fails the test.
func mustJSON(t testing.TB, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
