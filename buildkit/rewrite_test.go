package buildkit

import (
	"testing"

	"github.com/lade-build/lade/exporter"
	digest "github.com/opencontainers/go-digest"
)

// TestMarkEpochLayers: only the blobs the rewriter made are marked.
func TestMarkEpochLayers(t *testing.T) {
	a, b := digest.FromString("a"), digest.FromString("b")
	res := exporter.Result{Platforms: []exporter.PlatformResult{{Layers: []exporter.LayerResult{{Digest: a}, {Digest: b}}}}}
	markEpochLayers(&plan{epochLayers: map[digest.Digest]bool{b: true}}, res)
	if l := res.Platforms[0].Layers; l[0].EpochApplied || !l[1].EpochApplied {
		t.Fatalf("layers %+v", l)
	}
}
