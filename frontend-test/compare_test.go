//go:build integration

package frontendtest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/lade-build/lade/blobs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// epochOpt makes both daemons clamp times to the same SOURCE_DATE_EPOCH.
var epochOpt = []string{"--opt", "build-arg:SOURCE_DATE_EPOCH=1700000000"}

// ociBuild builds ctx on d into an OCI tar with extra output attributes and
// build flags, and opens it.
func ociBuild(t *testing.T, d *daemon, ctx, attrs string, flags ...string) *layout {
	t.Helper()
	tarPath := filepath.Join(t.TempDir(), d.kind+".tar")
	args := append(append([]string{}, flags...), "--output", "type=oci,dest="+tarPath+attrs)
	d.mustBuild(t, ctx, args...)
	return openLayoutTar(t, tarPath)
}

// withoutEmpty drops the empty tar's diffID.
func withoutEmpty(ds []digest.Digest) []digest.Digest {
	var out []digest.Digest
	for _, d := range ds {
		if d != blobs.EmptyTarDiffID {
			out = append(out, d)
		}
	}
	return out
}

// compareConfigs checks that lade's config is stock's apart from the
// dropped empty layers: rootfs without them and their history entries
// marked empty_layer.
func compareConfigs(t *testing.T, ladeCfg, stockCfg map[string]json.RawMessage) {
	t.Helper()
	var lh, sh []ocispec.History
	if json.Unmarshal(ladeCfg["history"], &lh) != nil || json.Unmarshal(stockCfg["history"], &sh) != nil || len(lh) != len(sh) {
		t.Fatalf("histories differ:\n lade  %s\n stock %s", ladeCfg["history"], stockCfg["history"])
	}
	for i := range sh {
		if strings.Contains(sh[i].CreatedBy, "RUN /bin/sh -c true") {
			if sh[i].EmptyLayer || !lh[i].EmptyLayer {
				t.Fatalf("empty RUN: stock empty_layer=%v, lade empty_layer=%v", sh[i].EmptyLayer, lh[i].EmptyLayer)
			}
			lh[i].EmptyLayer = false
		}
		if !reflect.DeepEqual(lh[i], sh[i]) {
			t.Fatalf("history entry %d:\n lade  %+v\n stock %+v", i, lh[i], sh[i])
		}
	}
	for k := range mergedKeys(ladeCfg, stockCfg) {
		if k == "history" || k == "rootfs" {
			continue
		}
		var a, b any
		_ = json.Unmarshal(ladeCfg[k], &a)
		_ = json.Unmarshal(stockCfg[k], &b)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("config %q:\n lade  %s\n stock %s", k, ladeCfg[k], stockCfg[k])
		}
	}
}

func mergedKeys(a, b map[string]json.RawMessage) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

// TestMatchesStockBuildKit builds mainDockerfile through lade-buildkitd and
// the stock buildkitd v0.34.2 with SOURCE_DATE_EPOCH and
// rewrite-timestamp=true (layer contents then do not depend on the build
// time): the same diffIDs for the same layers, the same config apart from
// the dropped empty layer, and with compression=gzip-compat the very same
// layer blobs.
func TestMatchesStockBuildKit(t *testing.T) {
	ld, sd := startDaemon(t, lade, ""), startDaemon(t, stock, "")
	ctx := contextDir(t, mainDockerfile, nil)
	l := ociBuild(t, ld, ctx, ",rewrite-timestamp=true", epochOpt...)
	s := ociBuild(t, sd, ctx, ",rewrite-timestamp=true", epochOpt...)
	li, si := l.verify(t)[0], s.verify(t)[0]
	sd0 := si.Config.RootFS.DiffIDs
	if len(sd0) != mainLayers+1 || len(withoutEmpty(sd0)) != mainLayers {
		t.Fatalf("stock image: %d layers, %d non-empty; want %d and %d", len(sd0), len(withoutEmpty(sd0)), mainLayers+1, mainLayers)
	}
	if fmt.Sprint(li.Config.RootFS.DiffIDs) != fmt.Sprint(withoutEmpty(sd0)) {
		t.Fatalf("diffIDs:\n lade  %v\n stock %v", li.Config.RootFS.DiffIDs, sd0)
	}
	compareConfigs(t, l.rawConfig(t), s.rawConfig(t))

	c := ociBuild(t, ld, ctx, ",rewrite-timestamp=true,compression=gzip-compat", epochOpt...)
	ci := c.verify(t)[0]
	var stockBlobs []digest.Digest
	for n, d := range si.Manifest.Layers {
		if sd0[n] != blobs.EmptyTarDiffID {
			stockBlobs = append(stockBlobs, d.Digest)
		}
	}
	var compat []digest.Digest
	for _, d := range ci.Manifest.Layers {
		compat = append(compat, d.Digest)
	}
	if fmt.Sprint(compat) != fmt.Sprint(stockBlobs) {
		t.Fatalf("gzip-compat blobs:\n lade  %v\n stock %v", compat, stockBlobs)
	}
}

// TestMatchesStockMultiPlatform builds two platforms by COPY only (no
// timestamp depends on the build) through both daemons: every config, and
// so every diffID, is the same.
func TestMatchesStockMultiPlatform(t *testing.T) {
	ctx := multiPlatformContext(t)
	flags := append([]string{"--opt", "platform=linux/amd64,linux/arm64"}, epochOpt...)
	l := ociBuild(t, startDaemon(t, lade, ""), ctx, "", flags...)
	s := ociBuild(t, startDaemon(t, stock, ""), ctx, "", flags...)
	li, si := l.verify(t), s.verify(t)
	if len(li) != 2 || len(si) != 2 {
		t.Fatalf("%d and %d images, want 2", len(li), len(si))
	}
	for n := range li {
		if !reflect.DeepEqual(li[n].Config, si[n].Config) {
			t.Errorf("platform %s/%s config:\n lade  %+v\n stock %+v", si[n].Config.OS, si[n].Config.Architecture, li[n].Config, si[n].Config)
		}
	}
}

// TestNativeSnapshotter builds on the native snapshotter (lade's differ
// walks both trees) and on overlayfs (it reads the upperdir): the same
// layers, and a runnable image.
func TestNativeSnapshotter(t *testing.T) {
	ctx := contextDir(t, mainDockerfile, nil)
	native := startDaemon(t, lade, "[worker.oci]\n  snapshotter = \"native\"\n")
	tarPath := filepath.Join(t.TempDir(), "n.tar")
	out := native.mustBuild(t, ctx, "--output", "type=oci,dest="+tarPath+",name=lade/native:v1")
	mustContain(t, "native progress", out, "compressing layer 1 (lade gzip)")
	checkMainImage(t, extract(t, tarPath), "v1")
	n := ociBuild(t, native, ctx, ",rewrite-timestamp=true", epochOpt...)
	o := ociBuild(t, startDaemon(t, lade, ""), ctx, ",rewrite-timestamp=true", epochOpt...)
	if a, b := diffIDsOf(t, n), diffIDsOf(t, o); fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("diffIDs:\n native    %v\n overlayfs %v", a, b)
	}
}

// differDockerfile copies two trees over each other: the second layer
// adds files to directories of the first and replaces some of its files,
// so the overlay upperdir holds copied-up directories.
const differDockerfile = `FROM scratch
COPY tree/ /
COPY more/ /
`

// differContext writes differDockerfile's context: 600 files of sizes
// around the read-ahead limit (64 KiB) in nested directories, symlinks,
// and a second tree that changes the first.
func differContext(t *testing.T) string {
	t.Helper()
	ctx := contextDir(t, differDockerfile, nil)
	sizes := []int{0, 1, 4096, 64<<10 - 1, 64 << 10, 64<<10 + 1, 200 << 10}
	for d := range 10 {
		for i := range 60 {
			size := sizes[(d+i)%len(sizes)]
			writeTreeFile(t, filepath.Join(ctx, "tree", fmt.Sprintf("d%d/s%d/f%02d", d, i%3, i)), strings.Repeat(string(rune('a'+i%26)), size))
		}
		if err := os.Symlink(fmt.Sprintf("s0/f%02d", d), filepath.Join(ctx, "tree", fmt.Sprintf("d%d/link", d))); err != nil {
			t.Fatal(err)
		}
		writeTreeFile(t, filepath.Join(ctx, "more", fmt.Sprintf("d%d/s1/f%02d", d, 1)), "replaced\n")
		writeTreeFile(t, filepath.Join(ctx, "more", fmt.Sprintf("d%d/new", d)), strings.Repeat("n", 70000))
	}
	return ctx
}

func writeTreeFile(t *testing.T, p, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDifferMatchesBuildKitDiffer builds the same context on two
// lade-buildkitd daemons, one with lade's differ (the default) and one
// with --differ buildkit (LADE_DIFFER=buildkit): the same diffIDs and, the
// compressor being the same, the same blobs.
func TestDifferMatchesBuildKitDiffer(t *testing.T) {
	ctx := differContext(t)
	ld := startDaemon(t, lade, "")
	t.Setenv("LADE_DIFFER", "buildkit")
	bd := startDaemon(t, lade, "")
	mustContain(t, "lade differ daemon log", ld.log.String(), "lade differ")
	mustContain(t, "buildkit differ daemon log", bd.log.String(), "buildkit differ")
	l, b := ociBuild(t, ld, ctx, ""), ociBuild(t, bd, ctx, "")
	li, bi := l.verify(t)[0], b.verify(t)[0]
	if len(li.Manifest.Layers) != 2 {
		t.Fatalf("%d layers, want 2", len(li.Manifest.Layers))
	}
	if fmt.Sprint(li.Config.RootFS.DiffIDs) != fmt.Sprint(bi.Config.RootFS.DiffIDs) {
		t.Fatalf("diffIDs:\n lade differ     %v\n buildkit differ %v", li.Config.RootFS.DiffIDs, bi.Config.RootFS.DiffIDs)
	}
	for n := range li.Manifest.Layers {
		if a, c := li.Manifest.Layers[n].Digest, bi.Manifest.Layers[n].Digest; a != c {
			t.Fatalf("layer %d: blob %s with lade's differ, %s with BuildKit's", n, a, c)
		}
	}
}
