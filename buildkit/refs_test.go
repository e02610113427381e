package buildkit

import (
	"testing"

	"github.com/containerd/containerd/v2/pkg/labels"
	"github.com/lade-build/lade/blobs"
	"github.com/moby/buildkit/solver"
	"github.com/moby/buildkit/util/contentutil"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestBaseEmptyLayersKept checks that the base image's empty layer is not
// reported empty (so lade keeps it and base and derived images share
// diffIDs) while a new empty layer is.
func TestBaseEmptyLayersKept(t *testing.T) {
	layer := func(diffID digest.Digest) ocispecs.Descriptor {
		return ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageLayerGzip, Digest: digest.FromString(diffID.String()), Size: 1,
			Annotations: map[string]string{labels.LabelUncompressed: diffID.String()}}
	}
	full := digest.FromString("full")
	pp := &platformPlan{
		remote:      &solver.Remote{Provider: contentutil.NewBuffer(), Descriptors: []ocispecs.Descriptor{layer(full), layer(blobs.EmptyTarDiffID), layer(blobs.EmptyTarDiffID)}},
		baseDiffIDs: []digest.Digest{full, blobs.EmptyTarDiffID},
	}
	if n := baseLayers(pp); n != 2 {
		t.Fatalf("base layers %d, want 2", n)
	}
	_, empty, err := ladeChain(pp)
	if err != nil {
		t.Fatal(err)
	}
	if empty[0] || empty[1] || !empty[2] {
		t.Errorf("empty %v, want only the new layer empty", empty)
	}
	pp.baseDiffIDs = []digest.Digest{digest.FromString("other")}
	if n := baseLayers(pp); n != 0 {
		t.Errorf("base layers %d for a different base, want 0", n)
	}
}
