package imagestore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestMain lets the test binary play a second lade process (see
// TestConcurrentProcesses).
func TestMain(m *testing.M) {
	if root := os.Getenv(childRootEnv); root != "" {
		if err := childExport(context.Background(), root, os.Getenv(childIDEnv)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// newStore opens a Store in a fresh directory, closed at the end of the test.
func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "root"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// putBlob writes data with labels into cs and returns its descriptor.
func putBlob(ctx context.Context, cs content.Ingester, mediaType string, data []byte, labels map[string]string) (ocispec.Descriptor, error) {
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}
	err := content.WriteBlob(ctx, cs, "test-"+desc.Digest.Encoded(), bytes.NewReader(data), desc,
		content.WithLabels(labels))
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("write blob: %w", err)
	}
	return desc, nil
}

// testImage is a tiny image written by writeImage.
type testImage struct {
	Layer, Config, Manifest ocispec.Descriptor
}

// writeImage writes a layer, a config and a manifest whose gc.ref.content
// labels reference both; seed makes the blobs unique.
func writeImage(ctx context.Context, cs content.Ingester, seed string) (testImage, error) {
	var img testImage
	var err error
	if img.Layer, err = putBlob(ctx, cs, ocispec.MediaTypeImageLayerGzip, []byte("layer "+seed), nil); err != nil {
		return img, err
	}
	cfg := fmt.Sprintf(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["%s"]}}`,
		digest.FromString("diff "+seed))
	if img.Config, err = putBlob(ctx, cs, ocispec.MediaTypeImageConfig, []byte(cfg), nil); err != nil {
		return img, err
	}
	m, err := json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    img.Config,
		Layers:    []ocispec.Descriptor{img.Layer},
	})
	if err != nil {
		return img, err
	}
	img.Manifest, err = putBlob(ctx, cs, ocispec.MediaTypeImageManifest, m, map[string]string{
		"containerd.io/gc.ref.content.config": img.Config.Digest.String(),
		"containerd.io/gc.ref.content.l.0":    img.Layer.Digest.String(),
	})
	return img, err
}

// blobPath is where the local content store keeps d's file.
func blobPath(s *Store, d digest.Digest) string {
	return filepath.Join(s.Root(), "content", "blobs", d.Algorithm().String(), d.Encoded())
}

// mustExist fails unless every digest is (want=true) or is not in the store.
func mustExist(t *testing.T, s *Store, want bool, descs ...ocispec.Descriptor) {
	t.Helper()
	for _, d := range descs {
		_, err := s.Content().Info(context.Background(), d.Digest)
		if got := err == nil; got != want {
			t.Errorf("blob %s (%s): present=%v, want %v (err %v)", d.Digest, d.MediaType, got, want, err)
		}
		if _, err := os.Stat(blobPath(s, d.Digest)); (err == nil) != want {
			t.Errorf("blob file %s: present=%v, want %v", d.Digest, err == nil, want)
		}
	}
}
