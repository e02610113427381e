//go:build integration

package frontendtest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/lade-build/lade/internal/testutil"
	digest "github.com/opencontainers/go-digest"
)

// edgeDockerfile has the layers where BuildKit's overlay upperdir differ
// and a walk of both trees disagree, and tar headers beyond the basics: a
// hard link to a file of a lower layer, a directory deleted and recreated
// (opaque), a moved directory, old and future mtimes, a long path (PAX), a
// symlink, COPY --link (a merge) and a RUN on top of it (its parent is the
// merge, not the layer below it in the chain).
var edgeDockerfile = `FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN mkdir -p /d/sub /keep /old /long/` + strings.Repeat("x", 120) + ` && echo a > /d/sub/a && echo b > /d/b \
 && echo orig > /keep/orig && echo past > /old/past && touch -d @1500000000 /old/past /old \
 && echo long > /long/` + strings.Repeat("x", 120) + `/file-with-a-rather-long-name-too
RUN rm -rf /d && mkdir -p /d/sub && echo new > /d/sub/n
RUN ln /keep/orig /keep/link && ln -s orig /keep/sym && touch -d @1800000000 /future && mv /old /moved
COPY --link hello.txt /linked/hello.txt
RUN echo after > /linked/after.txt
`

// layerReport is one layer of lade's "lade.export" response metadata.
type layerReport struct {
	DiffID       digest.Digest `json:"diffID"`
	Digest       digest.Digest `json:"digest"`
	Status       string        `json:"status"`
	Dropped      bool          `json:"dropped"`
	EpochApplied bool          `json:"epochApplied"`
}

// epochBuild builds ctx on lade-buildkitd d into an OCI tar with
// rewrite-timestamp=true, extra output attributes and build flags, and
// SOURCE_DATE_EPOCH=epoch; it returns the progress output, lade's layer
// report and the layout.
func epochBuild(t *testing.T, d *daemon, ctx string, epoch int64, attrs string, flags ...string) (string, []layerReport, *layout) {
	t.Helper()
	tmp := t.TempDir()
	md, tarPath := filepath.Join(tmp, "md.json"), filepath.Join(tmp, "x.tar")
	args := append([]string{"--opt", fmt.Sprintf("build-arg:SOURCE_DATE_EPOCH=%d", epoch), "--metadata-file", md,
		"--output", "type=oci,dest=" + tarPath + ",rewrite-timestamp=true" + attrs}, flags...)
	out := d.mustBuild(t, ctx, args...)
	var meta struct {
		Export struct {
			Platforms []struct {
				Layers []layerReport `json:"layers"`
			} `json:"platforms"`
		} `json:"lade.export"`
	}
	b, err := os.ReadFile(md)
	if err != nil || json.Unmarshal(b, &meta) != nil || len(meta.Export.Platforms) != 1 {
		t.Fatalf("metadata: %v\n%s", err, b)
	}
	return out, meta.Export.Platforms[0].Layers, openLayoutTar(t, tarPath)
}

// bkPipeline matches the status of a layer compressed by BuildKit's blob
// pipeline (the first pass the epoch path must not make).
var bkPipeline = regexp.MustCompile(`compressing layer \d+ \(lade [a-z-]+\)`)

// checkOnePass checks that every new layer was made by lade's epoch pass:
// no BuildKit converter vertex, no BuildKit blob pipeline, epochApplied on
// every layer with the wanted status.
func checkOnePass(t *testing.T, what, out string, layers []layerReport, status string) {
	t.Helper()
	for _, bad := range []string{"rewriting layers with source-date-epoch"} {
		if strings.Contains(out, bad) {
			t.Fatalf("%s: BuildKit's converter ran (%q):\n%s", what, bad, out)
		}
	}
	if m := bkPipeline.FindString(out); m != "" {
		t.Fatalf("%s: a layer went through BuildKit's blob pipeline (%q):\n%s", what, m, out)
	}
	mustContain(t, what, out, "exporting layers (lade, file times clamped to source-date-epoch")
	for n, l := range layers {
		if !l.EpochApplied || l.Status != status {
			t.Fatalf("%s: layer %d: epochApplied=%v status=%s, want true and %s", what, n, l.EpochApplied, l.Status, status)
		}
	}
}

// tempMounts lists the temporary mounts of lade's and BuildKit's differs
// still mounted.
func tempMounts(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 4 &&
			(strings.Contains(fields[4], "containerd-mount") || strings.Contains(fields[4], "buildkit-mount")) {
			out = append(out, fields[4])
		}
	}
	return out
}

func checkNoMounts(t *testing.T, what string) {
	t.Helper()
	if m := tempMounts(t); len(m) > 0 {
		t.Fatalf("%s: mounts left behind: %v", what, m)
	}
}

// TestRewriteOnePass: with rewrite-timestamp=true the new layers are
// diffed, clamped, hashed and compressed in one lade pass (no BuildKit
// blob, no converter), leaving no mount; an export with the same epoch
// reuses those blobs without reading the layers, another epoch never does.
func TestRewriteOnePass(t *testing.T) {
	d := startDaemon(t, lade, "")
	ctx := contextDir(t, mainDockerfile, nil)
	out, layers, first := epochBuild(t, d, ctx, 1700000000, "")
	first.verify(t)
	if len(layers) != mainLayers+1 {
		t.Fatalf("%d layers reported, want %d", len(layers), mainLayers+1)
	}
	checkOnePass(t, "first export", out, layers, "new")
	mustContain(t, "first export", out, "compressing layer 1 (lade gzip, diff, file times clamped to 1700000000)")
	checkNoMounts(t, "first export")

	out, again, second := epochBuild(t, d, ctx, 1700000000, "")
	checkOnePass(t, "same epoch", out, again, "reused")
	if strings.Contains(out, "compressing layer") {
		t.Fatalf("same epoch: a layer was computed again:\n%s", out)
	}
	if first.root.Digest != second.root.Digest {
		t.Fatalf("same epoch: image %s, then %s", first.root.Digest, second.root.Digest)
	}

	out, other, _ := epochBuild(t, d, ctx, 1600000000, "")
	checkOnePass(t, "other epoch", out, other, "new")
	for n := range layers {
		if !layers[n].Dropped && layers[n].DiffID == other[n].DiffID {
			t.Fatalf("layer %d has diffID %s for both epochs", n, layers[n].DiffID)
		}
	}
	checkNoMounts(t, "three exports")
}

// TestRewriteMatchesStockEdgeCases: for layers where the overlay upperdir
// and a tree walk disagree, and for unusual headers, lade's one-pass layers
// are stock BuildKit's rewritten layers byte for byte: the same diffIDs
// (the sha256 of the tars) and, with compression=gzip-compat, the same
// blobs.
func TestRewriteMatchesStockEdgeCases(t *testing.T) {
	ctx := contextDir(t, edgeDockerfile, map[string]string{"hello.txt": "hello\n"})
	ld, sd := startDaemon(t, lade, ""), startDaemon(t, stock, "")
	out, layers, lo := epochBuild(t, ld, ctx, 1700000000, ",compression=gzip-compat")
	checkOnePass(t, "edge cases", out, layers, "new")
	so := ociBuild(t, sd, ctx, ",rewrite-timestamp=true", epochOpt...)
	li, si := lo.verify(t)[0], so.verify(t)[0]
	if fmt.Sprint(li.Config.RootFS.DiffIDs) != fmt.Sprint(withoutEmpty(si.Config.RootFS.DiffIDs)) {
		t.Fatalf("diffIDs:\n lade  %v\n stock %v", li.Config.RootFS.DiffIDs, si.Config.RootFS.DiffIDs)
	}
	for n := range li.Manifest.Layers {
		if a, b := li.Manifest.Layers[n].Digest, si.Manifest.Layers[n].Digest; a != b {
			t.Fatalf("layer %d: lade blob %s, stock %s", n, a, b)
		}
	}
	checkNoMounts(t, "edge cases")
}

// TestRewriteKeepsBaseLayers: the layers of a pulled base image keep their
// blobs (BuildKit's rule: leading layers equal to the base config's
// diffIDs), only the new ones are clamped, and the diffIDs are stock
// BuildKit's.
func TestRewriteKeepsBaseLayers(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	cfg := fmt.Sprintf("[registry.%q]\n  http = true\n", reg.Host)
	ld, sd := startDaemon(t, lade, cfg), startDaemon(t, stock, cfg)
	base := reg.Host + "/lade/base:v1"
	ld.mustBuild(t, contextDir(t, mainDockerfile, nil), "--output", "type=image,name="+base+",push=true,registry.insecure=true")
	var bm struct {
		Layers []struct{ Digest digest.Digest } `json:"layers"`
	}
	if err := json.Unmarshal([]byte(skopeo(t, "inspect", "--tls-verify=false", "--raw", "docker://"+base)), &bm); err != nil {
		t.Fatal(err)
	}
	ctx := contextDir(t, "FROM "+base+"\nRUN echo top > /top.txt && mkdir -p /etc/app && echo more > /etc/app/more.txt\n", nil)
	out, layers, l := epochBuild(t, ld, ctx, 1700000000, "")
	s := ociBuild(t, sd, ctx, ",rewrite-timestamp=true", epochOpt...)
	if len(layers) != len(bm.Layers)+1 {
		t.Fatalf("%d layers, want the base's %d and one", len(layers), len(bm.Layers))
	}
	for n, b := range bm.Layers {
		if layers[n].Digest != b.Digest || layers[n].EpochApplied || layers[n].Status != "reused" {
			t.Fatalf("base layer %d: %+v, want blob %s reused as it is", n, layers[n], b.Digest)
		}
	}
	checkOnePass(t, "new layer", out, layers[len(bm.Layers):], "new")
	if a, b := diffIDsOf(t, l), diffIDsOf(t, s); fmt.Sprint(a) != fmt.Sprint(withoutEmpty(b)) {
		t.Fatalf("diffIDs:\n lade  %v\n stock %v", a, b)
	}
}

// TestRewriteFromImportedCache: layers of an imported cache are lazy (a
// blob, no snapshot): lade rewrites their blobs in its one pass instead of
// pulling and extracting them, and gets the pushed image's diffIDs.
func TestRewriteFromImportedCache(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	ctx := contextDir(t, mainDockerfile, nil)
	ref := reg.Host + "/lade/epoch-cache:v1"
	startDaemon(t, lade, "").mustBuild(t, ctx, append([]string{"--export-cache", "type=inline",
		"--output", "type=image,name=" + ref + ",push=true,registry.insecure=true,rewrite-timestamp=true"}, epochOpt...)...)
	var cfg struct {
		RootFS struct {
			DiffIDs []digest.Digest `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.Unmarshal([]byte(skopeo(t, "inspect", "--tls-verify=false", "--raw", "--config", "docker://"+ref)), &cfg); err != nil {
		t.Fatal(err)
	}
	fresh := startDaemon(t, lade, fmt.Sprintf("[registry.%q]\n  http = true\n", reg.Host))
	out, layers, l := epochBuild(t, fresh, ctx, 1700000000, "", "--import-cache", "type=registry,ref="+ref)
	checkOnePass(t, "imported cache", out, layers, "new")
	mustContain(t, "imported cache", out, "(lade gzip, blob, file times clamped to 1700000000)")
	if got := diffIDsOf(t, l); fmt.Sprint(got) != fmt.Sprint(cfg.RootFS.DiffIDs) {
		t.Fatalf("diffIDs %v, pushed %v", got, cfg.RootFS.DiffIDs)
	}
	checkNoMounts(t, "imported cache")
}

// TestRewriteFailureIsError: a layer that cannot be read (its snapshot
// directory is gone) fails the export with an error naming the layer,
// instead of a warning and an image with unclamped times; no mount is
// left behind.
func TestRewriteFailureIsError(t *testing.T) {
	d := startDaemon(t, lade, "")
	ctx := contextDir(t, mainDockerfile, nil)
	epochBuild(t, d, ctx, 1700000000, "")
	found, err := filepath.Glob(filepath.Join(d.dir, "root", "*", "snapshots", "snapshots", "*", "fs", "done.txt"))
	if err != nil || len(found) != 1 {
		t.Fatalf("snapshot of the last RUN: %v %v", found, err)
	}
	fs := filepath.Dir(found[0])
	if err := os.Rename(fs, fs+".gone"); err != nil {
		t.Fatal(err)
	}
	// Another epoch: the blob cache has nothing for it, the layer is read.
	out, err := d.build(t, ctx, "--output", "type=oci,dest="+filepath.Join(t.TempDir(), "x.tar")+",rewrite-timestamp=true",
		"--opt", "build-arg:SOURCE_DATE_EPOCH=1600000000")
	if err == nil {
		t.Fatalf("export of a layer that cannot be mounted succeeded:\n%s", out)
	}
	mustContain(t, "error", out, "rewrite-timestamp: layer 6 of 6", "done.txt")
	checkNoMounts(t, "failed export")
}

// TestRewriteMultiPlatform: two platforms' new layers are clamped in the
// same pass and match stock BuildKit's rewritten layers.
func TestRewriteMultiPlatform(t *testing.T) {
	ctx := multiPlatformContext(t)
	flags := append([]string{"--opt", "platform=linux/amd64,linux/arm64"}, epochOpt...)
	l := ociBuild(t, startDaemon(t, lade, ""), ctx, ",rewrite-timestamp=true", flags...)
	s := ociBuild(t, startDaemon(t, stock, ""), ctx, ",rewrite-timestamp=true", flags...)
	li, si := l.verify(t), s.verify(t)
	if len(li) != 2 || len(si) != 2 {
		t.Fatalf("%d and %d images, want 2", len(li), len(si))
	}
	for n := range li {
		if a, b := li[n].Config.RootFS.DiffIDs, si[n].Config.RootFS.DiffIDs; fmt.Sprint(a) != fmt.Sprint(b) {
			t.Errorf("platform %d diffIDs:\n lade  %v\n stock %v", n, a, b)
		}
	}
	checkNoMounts(t, "multi-platform")
}
