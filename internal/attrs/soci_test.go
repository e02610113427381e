package attrs

import (
	"strings"
	"testing"
)

// TestParseOutputSoci: soci, soci-span-size and soci-min-layer-size reach
// the exporter options; min 0 means every layer; bad values and soci with
// another compression are refused.
func TestParseOutputSoci(t *testing.T) {
	o, err := ParseOutput(map[string]string{"type": "image", "name": "r/x", "soci": "true", "soci-span-size": "2097152", "soci-min-layer-size": "0"})
	if err != nil {
		t.Fatal(err)
	}
	if !o.Options.Soci || o.Options.SociSpanSize != 2<<20 || o.Options.SociMinLayerSize != -1 {
		t.Errorf("options %+v", o.Options)
	}
	o, err = ParseOutput(map[string]string{"type": "oci", "dest": "x.tar", "soci": "", "soci-min-layer-size": "1048576"})
	if err != nil || !o.Options.Soci || o.Options.SociMinLayerSize != 1<<20 || o.Options.SociSpanSize != 0 {
		t.Errorf("options %+v, %v", o.Options, err)
	}
	for _, m := range []map[string]string{
		{"soci": "true", "soci-span-size": "0"},
		{"soci": "true", "soci-span-size": "4M"},
		{"soci": "true", "soci-min-layer-size": "-3"},
		{"soci": "true", "compression": "zstd"},
		{"soci-span-size": "1048576"},
	} {
		m["type"], m["name"] = "image", "r/x"
		if _, err := ParseOutput(m); err == nil || !strings.Contains(err.Error(), "soci") {
			t.Errorf("%v: error %v, want one about soci", m, err)
		}
	}
}
