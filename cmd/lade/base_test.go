package main

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/lade-build/lade/blobs"
	"github.com/lade-build/lade/exporter"
)

// TestExportBase exports an image, then layers on top of it from an OCI
// layout and from the store: the base layers must be reused as they are
// (same digests, status reused) and the base history kept.
func TestExportBase(t *testing.T) {
	fx := newFixture(t)
	c := newRunner(t)
	layout := filepath.Join(t.TempDir(), "base")
	c.ok("export", "--progress", "quiet", "-f", fx.spec,
		"-o", "type=oci,tar=false,dest="+layout+",name=base:1", "-o", "type=image,name=base:1")
	base := c.inspect("base:1")
	top := filepath.Join(fx.dir, "top")
	writeFile(t, filepath.Join(top, "etc/motd"), "on top of the base\n", 0o644)
	spec := filepath.Join(fx.dir, "top.yaml")
	writeFile(t, spec, "platforms:\n  - platform: linux/amd64\n    layers: [top]\n  - platform: linux/arm64\n    layers: [top]\n", 0o644)

	for _, tc := range []struct{ name, base, image string }{
		{"oci layout", "oci:" + layout + ":1", "app:oci"},
		{"store name", "base:1", "app:store"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			md := filepath.Join(t.TempDir(), "md.json")
			c.ok("export", "--progress", "quiet", "--base", tc.base, "-f", spec, "--metadata-file", md, "-o", "type=image,name="+tc.image)
			res := readMetadata(t, md)[0].Result
			app := c.inspect(tc.image)
			if len(app.Images) != len(base.Images) || len(res.Platforms) != len(base.Images) {
				t.Fatalf("%d platforms (metadata %d), base has %d", len(app.Images), len(res.Platforms), len(base.Images))
			}
			for i, b := range base.Images {
				checkOnBase(t, b, app.Images[i], res.Platforms[i].Layers)
			}
		})
	}
	c.checkClean()
}

// checkOnBase checks one platform of an image exported on top of base.
func checkOnBase(t *testing.T, base, app inspectedPlatform, meta []exporter.LayerResult) {
	t.Helper()
	n := len(base.Layers)
	if app.Platform != base.Platform || len(app.Layers) != n+1 || len(meta) != n+1 {
		t.Fatalf("%s: %d layers (metadata %d) on a %s base of %d", app.Platform, len(app.Layers), len(meta), base.Platform, n)
	}
	for i, l := range base.Layers {
		if app.Layers[i] != l {
			t.Errorf("%s layer %d: %+v, base has %+v", app.Platform, i, app.Layers[i], l)
		}
		if meta[i].Status != blobs.StatusReused || meta[i].Digest != l.Digest {
			t.Errorf("%s layer %d: metadata %s %s, want reused %s", app.Platform, i, meta[i].Status, meta[i].Digest, l.Digest)
		}
	}
	// The top layer is new the first time, and from the blob cache after.
	if meta[n].Digest != app.Layers[n].Digest || meta[n].Status == blobs.StatusConverted {
		t.Errorf("%s top layer: metadata %+v, image %+v", app.Platform, meta[n], app.Layers[n])
	}
	bh, ah := base.Config.History, app.Config.History
	if len(ah) != len(bh)+1 {
		t.Fatalf("%s: history %s, want the base's %s and one entry", app.Platform, jsonString(ah), jsonString(bh))
	}
	if got, want := jsonString(ah[:len(bh)]), jsonString(bh); got != want {
		t.Errorf("%s: base history changed:\n got %s\nwant %s", app.Platform, got, want)
	}
	last := ah[len(bh)]
	if last.CreatedBy != "lade export top" || last.EmptyLayer {
		t.Errorf("%s: new history entry %s", app.Platform, jsonString(last))
	}
	// The new image, and its new layer, are created now, not when the
	// base was.
	if app.Config.Created == nil || base.Config.Created == nil || !app.Config.Created.After(*base.Config.Created) ||
		last.Created == nil || !last.Created.Equal(*app.Config.Created) {
		t.Errorf("%s: created %v, new entry created %v, base created %v", app.Platform, app.Config.Created, last.Created, base.Config.Created)
	}
}

// jsonString is v as JSON, for comparisons and messages.
func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
