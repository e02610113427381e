package manifestlist_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/lade-build/lade/blobs"
	"github.com/lade-build/lade/manifestlist"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestVariantZstdChunked: a zstd:chunked variant is marked as a zstd
// instance and its layers keep the TOC annotations partial pulls read.
func TestVariantZstdChunked(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	insts, err := manifestlist.Instances(ctx, s.Content(), exportImage(t, s, false, "linux/amd64"), manifestlist.Select{})
	must(t, err)
	v, err := manifestlist.Variant(ctx, s.Content(), insts[0], blobs.Compression{Type: blobs.ZstdChunked}, manifestlist.VariantOptions{Cache: s.BlobCache()})
	must(t, err)
	if v.Annotations[manifestlist.AnnotationZstd] != "true" {
		t.Errorf("variant descriptor %+v lacks %s", v, manifestlist.AnnotationZstd)
	}
	var m ocispec.Manifest
	b, err := content.ReadBlob(ctx, s.Content(), v)
	must(t, err)
	must(t, json.Unmarshal(b, &m))
	if len(m.Layers) == 0 {
		t.Fatal("variant has no layers")
	}
	for i, l := range m.Layers {
		if l.MediaType != ocispec.MediaTypeImageLayerZstd || len(l.Annotations) != len(blobs.ZstdChunkedAnnotationKeys) || l.Annotations[blobs.AnnotationZstdChunkedTOC] == "" {
			t.Errorf("layer %d: %s %v", i, l.MediaType, l.Annotations)
		}
	}
}
