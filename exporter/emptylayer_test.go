package exporter

import (
	"testing"

	"github.com/opencontainers/go-digest"
)

// TestEmptyLayerGzip: the lazily made empty layer is the one Docker and
// BuildKit use, and the same bytes on every call.
func TestEmptyLayerGzip(t *testing.T) {
	const want = "sha256:4f4fb700ef54461cfa02571ae0db9a0dc1e0cdb5577484a6d75e68dc38e8acc1"
	if got := digest.FromBytes(emptyLayerGzip()); got != want {
		t.Errorf("empty layer digest %s, want %s", got, want)
	}
	if &emptyLayerGzip()[0] != &emptyLayerGzip()[0] {
		t.Error("emptyLayerGzip made the layer again")
	}
}
