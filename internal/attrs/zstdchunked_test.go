package attrs

import (
	"testing"

	"github.com/lade-build/lade/blobs"
)

// TestParseZstdChunked: compression=zstd:chunked (the ':' inside the
// value) parses, with zstd's levels and force-compression.
func TestParseZstdChunked(t *testing.T) {
	m, err := ParseCSV("type=image,name=a:1,compression=zstd:chunked,compression-level=7,force-compression=true")
	if err != nil {
		t.Fatal(err)
	}
	o, err := ParseOutput(m)
	if err != nil {
		t.Fatal(err)
	}
	c := o.Options.Compression
	if c.Type != blobs.ZstdChunked || c.Level == nil || *c.Level != 7 || !o.Options.ForceCompression {
		t.Errorf("parsed %+v, force %v", c, o.Options.ForceCompression)
	}
	m, _ = ParseCSV("type=oci,dest=x,compression=zstd:chunked,compression-level=23")
	if _, err := ParseOutput(m); err == nil {
		t.Error("compression-level=23 accepted for zstd:chunked")
	}
}
