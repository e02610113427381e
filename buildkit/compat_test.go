package buildkit

import (
	"testing"

	bkcompression "github.com/moby/buildkit/util/compression"
)

// TestDefaults checks the daemon's stock-compatible defaults: empty layers
// kept and gzip written as stock BuildKit writes it, unless the export's
// own attributes say otherwise.
func TestDefaults(t *testing.T) {
	stock := Defaults{KeepEmptyLayers: true, GzipCompat: true}
	cases := []struct {
		in        map[string]string
		def       Defaults
		keepEmpty bool
		comp      bkcompression.Type
	}{
		{nil, Defaults{}, false, ladeGzip},
		{nil, stock, true, bkcompression.Gzip},
		{map[string]string{"compression": "gzip"}, stock, true, bkcompression.Gzip},
		{map[string]string{"keep-empty-layers": "false", "compression": "zstd"}, stock, false, ladeZstd},
		{map[string]string{"compression": "uncompressed"}, stock, true, bkcompression.Uncompressed},
	}
	for _, c := range cases {
		s, err := parseSettings("image", c.in, c.def)
		if err != nil {
			t.Fatal(err)
		}
		if s.out.Options.KeepEmptyLayers != c.keepEmpty || s.refCfg.Compression.Type != c.comp {
			t.Errorf("%v with %+v: keep-empty-layers %v, compression %v; want %v, %v", c.in, c.def,
				s.out.Options.KeepEmptyLayers, s.refCfg.Compression.Type, c.keepEmpty, c.comp)
		}
	}
	SetDaemonDefaults(stock)
	defer SetDaemonDefaults(Defaults{})
	if DaemonDefaults() != stock {
		t.Errorf("daemon defaults %+v, want %+v", DaemonDefaults(), stock)
	}
}
