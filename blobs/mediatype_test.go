package blobs

import "testing"

// TestTypeOfMediaType checks the layer media types lade reads, foreign
// Docker layers included (BuildKit's TestBuildExportWithForeignLayer pulls
// an uncompressed one).
func TestTypeOfMediaType(t *testing.T) {
	for mt, want := range map[string]Type{
		"application/vnd.oci.image.layer.v1.tar":                    Uncompressed,
		"application/vnd.docker.image.rootfs.foreign.diff.tar":      Uncompressed,
		"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": Gzip,
		MediaTypeDockerLayerZstd:                                    Zstd,
	} {
		if got, err := TypeOfMediaType(mt); err != nil || got != want {
			t.Errorf("%s: %q, %v; want %q", mt, got, err, want)
		}
	}
	if _, err := TypeOfMediaType("application/x-tar"); err == nil {
		t.Error("unknown media type accepted")
	}
}
