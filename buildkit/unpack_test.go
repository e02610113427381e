package buildkit

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/platforms"
	"github.com/lade-build/lade/internal/testutil"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// storeJSON writes v as a blob of media type mt.
func storeJSON(t *testing.T, cs content.Ingester, mt string, v any) ocispecs.Descriptor {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	d := ocispecs.Descriptor{MediaType: mt, Digest: digest.FromBytes(b), Size: int64(len(b))}
	if err := content.WriteBlob(context.Background(), cs, d.Digest.String(), bytes.NewReader(b), d); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestManifestLayers: each manifest layer is paired with the config's
// diffID at the same index; a config whose diffIDs do not match the
// layers in number is refused.
func TestManifestLayers(t *testing.T) {
	cs, _ := testutil.ContentStores(t)
	ids := []digest.Digest{digest.FromString("a"), digest.FromString("b")}
	blobs := []ocispecs.Descriptor{
		{MediaType: ocispecs.MediaTypeImageLayerGzip, Digest: digest.FromString("ga"), Size: 1},
		{MediaType: ocispecs.MediaTypeImageLayerGzip, Digest: digest.FromString("gb"), Size: 2},
	}
	img := ocispecs.Image{RootFS: ocispecs.RootFS{Type: "layers", DiffIDs: ids}}
	cfg := storeJSON(t, cs, ocispecs.MediaTypeImageConfig, img)
	layers, err := manifestLayers(context.Background(), cs, ocispecs.Manifest{Config: cfg, Layers: blobs})
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 2 {
		t.Fatalf("%d layers", len(layers))
	}
	for n, l := range layers {
		if l.Blob.Digest != blobs[n].Digest || l.Diff.Digest != ids[n] || l.Diff.MediaType != ocispecs.MediaTypeImageLayer {
			t.Errorf("layer %d: blob %s diff %s (%s)", n, l.Blob.Digest, l.Diff.Digest, l.Diff.MediaType)
		}
	}
	_, err = manifestLayers(context.Background(), cs, ocispecs.Manifest{Config: cfg, Layers: blobs[:1]})
	if err == nil || !strings.Contains(err.Error(), "2 diffIDs for 1 layers") {
		t.Fatalf("mismatch: %v", err)
	}
}

// TestHasPlatform: an export is unpacked only when one of its platforms
// is the host's.
func TestHasPlatform(t *testing.T) {
	host := platforms.Only(platforms.Normalize(platforms.DefaultSpec()))
	other := ocispecs.Platform{OS: "windows", Architecture: "arm64"}
	p := &plan{platforms: []*platformPlan{{platform: other}}}
	if hasPlatform(p, host) {
		t.Fatal("windows/arm64 matched the host")
	}
	p.platforms = append(p.platforms, &platformPlan{platform: platforms.Normalize(platforms.DefaultSpec())})
	if !hasPlatform(p, host) {
		t.Fatal("the host's platform did not match")
	}
}

// TestUnpackWithoutSnapshotter: a worker without a snapshotter cannot
// unpack, and says how to go on.
func TestUnpackWithoutSnapshotter(t *testing.T) {
	i := &instance{e: &Exporter{}}
	err := i.unpackImage(context.Background(), &plan{}, ocispecs.Descriptor{}, "x")
	if err == nil || !strings.Contains(err.Error(), "remove unpack=true") {
		t.Fatalf("err %v", err)
	}
}
