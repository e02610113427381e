package push

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/json"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lade-build/lade/internal/testutil"
	"github.com/lade-build/lade/progress"
)

// testImage is a hand-built image written into a store.
type testImage struct {
	root  ocispec.Descriptor
	blobs []ocispec.Descriptor // every blob, root included
}

// newStore returns a local content store in a temp dir that keeps labels.
func newStore(t *testing.T) content.Store {
	t.Helper()
	s, err := local.NewLabeledStore(t.TempDir(), testutil.NewLabelStore())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// writeJSON marshals v and writes it as a blob of mediaType.
func writeJSON(t *testing.T, s content.Ingester, mediaType string, v any) ocispec.Descriptor {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return writeBlob(t, s, mediaType, b)
}

// writeBlob writes b as a blob of mediaType.
func writeBlob(t *testing.T, s content.Ingester, mediaType string, b []byte) ocispec.Descriptor {
	t.Helper()
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
	if err := content.WriteBlob(context.Background(), s, desc.Digest.String(), bytes.NewReader(b), desc); err != nil {
		t.Fatal(err)
	}
	return desc
}

// gzipTar returns a gzip tar holding one file with data, and the tar's
// digest (the diffID).
func gzipTar(t *testing.T, name string, data []byte) ([]byte, digest.Digest) {
	t.Helper()
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(raw.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return gz.Bytes(), digest.FromBytes(raw.Bytes())
}

// randomBytes returns n random bytes (incompressible layer content).
func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// writeImage writes a two-platform OCI image into s: an index, one manifest
// per platform, a config each, a shared base layer (256 KiB random) and one
// small layer per platform.
func writeImage(t *testing.T, s content.Ingester) testImage {
	t.Helper()
	var img testImage
	baseGz, baseID := gzipTar(t, "base.bin", randomBytes(t, 256<<10))
	base := writeBlob(t, s, ocispec.MediaTypeImageLayerGzip, baseGz)
	img.blobs = append(img.blobs, base)
	var manifests []ocispec.Descriptor
	for _, arch := range []string{"amd64", "arm64"} {
		gz, id := gzipTar(t, "arch.txt", []byte("hello from "+arch+"\n"))
		layer := writeBlob(t, s, ocispec.MediaTypeImageLayerGzip, gz)
		cfg := writeJSON(t, s, ocispec.MediaTypeImageConfig, ocispec.Image{
			Platform: ocispec.Platform{OS: "linux", Architecture: arch},
			RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{baseID, id}},
		})
		m := writeJSON(t, s, ocispec.MediaTypeImageManifest, ocispec.Manifest{
			Versioned: specs.Versioned{SchemaVersion: 2},
			MediaType: ocispec.MediaTypeImageManifest,
			Config:    cfg,
			Layers:    []ocispec.Descriptor{base, layer},
		})
		m.Platform = &ocispec.Platform{OS: "linux", Architecture: arch}
		manifests = append(manifests, m)
		img.blobs = append(img.blobs, layer, cfg, m)
	}
	img.root = writeJSON(t, s, ocispec.MediaTypeImageIndex, ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: manifests,
	})
	img.blobs = append(img.blobs, img.root)
	return img
}

// finalStatuses returns the Done status (or "error: ...") of every
// progress vertex, by ID.
func finalStatuses(rec *progress.Recorder) map[string]string {
	out := map[string]string{}
	for _, e := range rec.Events() {
		if !e.Done() {
			continue
		}
		if e.Error != "" {
			out[e.ID] = "error: " + e.Error
		} else {
			out[e.ID] = e.Status
		}
	}
	return out
}

// requireAll fails unless s has every blob of img.
func requireAll(t *testing.T, s content.InfoProvider, img testImage) {
	t.Helper()
	for _, b := range img.blobs {
		info, err := s.Info(context.Background(), b.Digest)
		if errdefs.IsNotFound(err) {
			t.Errorf("blob %s missing", b.Digest)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if info.Size != b.Size {
			t.Errorf("blob %s: size %d, want %d", b.Digest, info.Size, b.Size)
		}
	}
}
