package exporter_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/lade-build/lade/exporter"
	"github.com/lade-build/lade/exporter/exportertest"
	digest "github.com/opencontainers/go-digest"
)

// TestCommitEpochPerPlatform: two platforms with their own
// SOURCE_DATE_EPOCH (as BuildKit's frontends give source.date.epoch/<id>)
// get each its own config and history times and, with rewrite-timestamp,
// layers clamped to its own epoch, even when they share a ref. A platform
// without one takes Options.Epoch.
func TestCommitEpochPerPlatform(t *testing.T) {
	s := newStore(t)
	shared := &exportertest.MemRef{RefID: "e-shared", Desc: "COPY app", Files: map[string]string{"app": "x"}}
	e1, e2, def := time.Unix(1000, 0).UTC(), time.Unix(2000, 0).UTC(), time.Unix(3000, 0).UTC()
	cfg := []byte(`{"created":"2025-01-01T00:00:00Z","history":[{"created":"2025-01-01T00:00:00Z","created_by":"COPY app"}]}`)
	res, err := exporter.NewImageWriter(s).Commit(context.Background(), exporter.Source{Platforms: []exporter.PlatformSource{
		{Platform: "linux/amd64", Ref: shared, Config: cfg, Epoch: &e1},
		{Platform: "linux/arm64", Ref: shared, Config: cfg, Epoch: &e2},
		{Platform: "linux/riscv64", Ref: shared, Config: cfg},
	}}, exporter.Options{Epoch: &def, RewriteTimestamp: true})
	if err != nil {
		t.Fatal(err)
	}
	imgs := verify(t, s, res.Descriptor)
	for n, want := range []time.Time{e1, e2, def} {
		img := imgs[n]
		if !img.Config.Created.Equal(want) {
			t.Errorf("%s: config created %v, want %v", img.Config.Platform.Architecture, img.Config.Created, want)
		}
		if h := img.Config.History[0].Created; h == nil || !h.Equal(want) {
			t.Errorf("%s: history created %v, want %v", img.Config.Platform.Architecture, h, want)
		}
		wantDiff := digest.FromBytes(shared.Tar(&want))
		if len(img.DiffIDs) != 1 || img.DiffIDs[0] != wantDiff {
			t.Errorf("%s: diffIDs %v, want the layer clamped to %v (%s)", img.Config.Platform.Architecture, img.DiffIDs, want, wantDiff)
		}
	}
	if got := shared.Diffs.Load(); got != 3 {
		t.Errorf("shared layer diffed %d times, want once per epoch (3)", got)
	}
	if !res.Created.Equal(def) {
		t.Errorf("result created %v, want the latest platform time %v", res.Created, def)
	}
}

// TestCommitRewriteNeedsEveryPlatformEpoch: rewrite-timestamp with an
// epoch for one platform only names the platform that has none.
func TestCommitRewriteNeedsEveryPlatformEpoch(t *testing.T) {
	e := time.Unix(1000, 0)
	_, err := exporter.NewImageWriter(newStore(t)).Commit(context.Background(), exporter.Source{Platforms: []exporter.PlatformSource{
		{Platform: "linux/amd64", Ref: &exportertest.MemRef{RefID: "n-a", Files: map[string]string{"a": "1"}}, Epoch: &e},
		{Platform: "linux/arm64", Ref: &exportertest.MemRef{RefID: "n-b", Files: map[string]string{"a": "1"}}},
	}}, exporter.Options{RewriteTimestamp: true})
	if err == nil || !strings.Contains(err.Error(), "linux/arm64: rewrite-timestamp needs an epoch") {
		t.Fatalf("err %v, want linux/arm64 named as needing an epoch", err)
	}
}
