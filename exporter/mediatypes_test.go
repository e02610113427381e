package exporter

import (
	"reflect"
	"testing"
)

// TestPublicAnnotations checks which layer annotations reach a manifest:
// not containerd's, BuildKit's or lade's internal ones, but eStargz's TOC
// digest, which lazy-pulling snapshotters read (as BuildKit keeps it).
func TestPublicAnnotations(t *testing.T) {
	in := map[string]string{
		"containerd.io/uncompressed":               "sha256:a",
		"containerd.io/distribution.source.docker": "x",
		"buildkit/createdat":                       "t",
		"buildkit/rewritten-timestamp":             "1700000000",
		"lade.dev/ref":                             "r",
		"containerd.io/snapshot/stargz/toc.digest": "sha256:toc",
		"io.containers.estargz.uncompressed-size":  "10",
		"org.example":                              "v",
	}
	want := map[string]string{
		"buildkit/rewritten-timestamp":             "1700000000",
		"containerd.io/snapshot/stargz/toc.digest": "sha256:toc",
		"io.containers.estargz.uncompressed-size":  "10",
		"org.example": "v",
	}
	if got := publicAnnotations(in); !reflect.DeepEqual(got, want) {
		t.Errorf("public annotations %v, want %v", got, want)
	}
	if got := publicAnnotations(map[string]string{"containerd.io/uncompressed": "x"}); got != nil {
		t.Errorf("only internal annotations: %v, want nil", got)
	}
}
