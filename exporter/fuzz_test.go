package exporter

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// FuzzNormalizeHistory: for any config history and layer emptiness, the
// result keeps the invariant non-empty entries == layers kept, or fails
// with an error; it never panics.
func FuzzNormalizeHistory(f *testing.F) {
	f.Add([]byte(`{"history":[{"created_by":"a"},{"empty_layer":true}]}`), uint16(0b101), uint8(3), false, false)
	f.Add([]byte(`{}`), uint16(0), uint8(0), true, true)
	f.Add([]byte(`{"history":[{},{},{},{}]}`), uint16(1), uint8(2), true, false)
	f.Fuzz(func(t *testing.T, cfg []byte, emptyMask uint16, nLayers uint8, repair, keepEmpty bool) {
		c, err := parseConfig(cfg)
		if err != nil {
			return
		}
		n := int(nLayers % 12)
		layers := make([]layerMeta, n)
		for i := range layers {
			layers[i] = layerMeta{Empty: emptyMask&(1<<i) != 0, Description: "l"}
		}
		epoch := time.Unix(1000, 0)
		base := 0
		if len(c.History) > 0 {
			base = 1
		}
		norm, err := normalizeHistory(c.History, layers, historyRules{KeepEmpty: keepEmpty, Repair: repair, Created: epoch, Epoch: &epoch, BaseHistory: base})
		if err != nil {
			return
		}
		nonEmpty := 0
		for i, h := range norm.History {
			if !h.EmptyLayer {
				nonEmpty++
			}
			if i < base {
				continue // base entries are kept as they are
			}
			if h.Created == nil {
				t.Fatalf("entry %d without created", i)
			}
			if h.Created.After(epoch) {
				t.Fatalf("entry %d created after the epoch", i)
			}
		}
		want := len(norm.Keep)
		if norm.AddEmpty {
			want++
		}
		if nonEmpty != want || (want == 0) != (n == 0) {
			t.Fatalf("%d non-empty entries for %d layers", nonEmpty, want)
		}
		if _, err := c.marshal(nil, epoch); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzParsePlatform: an accepted platform has os and architecture and
// round-trips through its normalized form.
func FuzzParsePlatform(f *testing.F) {
	for _, s := range []string{"linux/amd64", "linux/arm64/v8", "windows/amd64", "linux", "x86_64", "linux/amd 64", "", "linux/arm/v7"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePlatform(s)
		if err != nil {
			return
		}
		if p.OS == "" || p.Architecture == "" {
			t.Fatalf("%q gave %+v", s, p)
		}
		again, err := ParsePlatform(platforms.Format(p))
		if err != nil || platforms.Format(again) != platforms.Format(p) {
			t.Fatalf("%q: %+v does not round-trip: %+v %v", s, p, again, err)
		}
		b, _ := json.Marshal(ocispec.Platform(p))
		if len(b) == 0 {
			t.Fatal("empty")
		}
	})
}
