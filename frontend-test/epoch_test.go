//go:build integration

package frontendtest

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/moby/buildkit/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestEpochPerPlatform: a frontend gives each platform of a multi-platform
// build its own SOURCE_DATE_EPOCH (source.date.epoch/<platform>, as
// dockerui does); with rewrite-timestamp=true, both daemons give each
// platform its own config and history times and its own layer (file times
// clamped to its epoch), although both platforms share one ref: the same
// configs, diffIDs, and index.json created annotation (not an epoch: there
// is no build-wide one) as stock buildkitd.
func TestEpochPerPlatform(t *testing.T) {
	// Each platform its epoch; then one without any (BuildKit leaves its
	// layer and times as they are).
	for _, epochs := range [][]int64{{1000000000, 1100000000}, {1000000000, 0}} {
		t.Run(fmt.Sprint(epochs), func(t *testing.T) { epochPerPlatform(t, epochs) })
	}
}

func epochPerPlatform(t *testing.T, epochs []int64) {
	plats := []ocispec.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}
	out := map[string][]ocispec.Image{}
	for _, kind := range []string{lade, stock} {
		d := startDaemon(t, kind, "")
		dest := filepath.Join(t.TempDir(), kind+".tar")
		ex := client.ExportEntry{Type: client.ExporterOCI, Attrs: map[string]string{"rewrite-timestamp": "true"}}
		gatewayBuild(t, d, ex, dest, platformsFrontend(plats, epochs))
		l := openLayoutTar(t, dest)
		for n, img := range l.verify(t) {
			want := time.Unix(epochs[n], 0).UTC()
			if epochs[n] == 0 {
				want = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC) // the frontend's times, kept
			}
			if !img.Config.Created.Equal(want) || !img.Config.History[0].Created.Equal(want) {
				t.Errorf("%s %s: created %v, history %v; want %v", kind, img.Config.Architecture, img.Config.Created, img.Config.History[0].Created, want)
			}
			out[kind] = append(out[kind], img.Config)
		}
	}
	if len(out[lade]) != 2 || len(out[stock]) != 2 {
		t.Fatalf("images: lade %d, stock %d; want 2", len(out[lade]), len(out[stock]))
	}
	for n := range out[stock] {
		l, s := out[lade][n], out[stock][n]
		if fmt.Sprint(l.RootFS.DiffIDs) != fmt.Sprint(s.RootFS.DiffIDs) {
			t.Errorf("%s diffIDs:\n lade  %v\n stock %v", s.Architecture, l.RootFS.DiffIDs, s.RootFS.DiffIDs)
		}
		if !l.Created.Equal(*s.Created) {
			t.Errorf("%s created: lade %v, stock %v", s.Architecture, l.Created, s.Created)
		}
	}
	if fmt.Sprint(out[stock][0].RootFS.DiffIDs) == fmt.Sprint(out[stock][1].RootFS.DiffIDs) {
		t.Errorf("stock gave both platforms the same layer %v: the epochs did not reach the layers", out[stock][0].RootFS.DiffIDs)
	}
}
