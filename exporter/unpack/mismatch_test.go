package unpack_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	"github.com/lade-build/lade/cache"
	"github.com/lade-build/lade/exporter/archive/archivetest"
	"github.com/lade-build/lade/exporter/unpack"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestUnpackMismatch checks that a corrupt layer blob and a layer whose
// tar is not its diffID fail with cache.ErrDigestMismatch (data loss), the
// one digest-mismatch error every reader returns.
func TestUnpackMismatch(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	layer := tarOf(t, entry{name: "f", body: "data", typ: '0'})
	root := rawImage(t, s, layer)
	var m ocispec.Manifest
	b, err := content.ReadBlob(ctx, s, root)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	// The same layer under a config naming another diffID.
	cfg, _ := json.Marshal(ocispec.Image{Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromString("other")}}})
	m.Config = write(t, s, ocispec.MediaTypeImageConfig, cfg)
	mb, _ := json.Marshal(m)
	wrongDiffID := write(t, s, ocispec.MediaTypeImageManifest, mb)

	for name, tc := range map[string]struct {
		p    content.Provider
		root ocispec.Descriptor
	}{
		"corrupt blob":  {archivetest.Corrupt(s, m.Layers[0].Digest, false), root},
		"wrong diff_id": {s, wrongDiffID},
	} {
		err := unpack.Unpack(ctx, tc.p, tc.root, t.TempDir()+"/rootfs", unpack.Options{})
		if !errors.Is(err, cache.ErrDigestMismatch) || !errdefs.IsDataLoss(err) {
			t.Errorf("%s: %v, want cache.ErrDigestMismatch (data loss)", name, err)
		}
	}
}
