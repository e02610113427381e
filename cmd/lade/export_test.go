package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lade-build/lade/exporter/exportertest"
	"github.com/lade-build/lade/internal/testutil"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestExportOutputs exports the two-platform fixture to every output type
// at once and checks each with skopeo, the output oracle and umoci, then
// runs the amd64 image with runc.
func TestExportOutputs(t *testing.T) {
	testutil.RequireTool(t, "skopeo", "umoci", "runc")
	fx := newFixture(t)
	c := newRunner(t)
	out := t.TempDir()
	ociTar, ociDir := filepath.Join(out, "app.tar"), filepath.Join(out, "layout")
	dockerTar, md := filepath.Join(out, "app-docker.tar"), filepath.Join(out, "md.json")
	c.ok("export", "--progress", "quiet", "-f", fx.spec, "--metadata-file", md,
		"-o", "type=oci,dest="+ociTar+",name=app:1",
		"-o", "type=oci,tar=false,dest="+ociDir+",name=app:1",
		"-o", "type=docker,dest="+dockerTar+",name=app:1",
		"-o", "type=image,name=app:1")

	res := readMetadata(t, md)
	if len(res) != 4 {
		t.Fatalf("metadata has %d outputs, want 4", len(res))
	}
	root := res[0].Result.Descriptor
	for _, r := range res {
		if r.Result.Descriptor.Digest != root.Digest {
			t.Errorf("output %q: root %s, want the same image as %q (%s)", r.Output, r.Result.Descriptor.Digest, res[0].Output, root.Digest)
		}
		checkDropped(t, r)
	}
	if root.MediaType != ocispec.MediaTypeImageIndex {
		t.Fatalf("root media type %s, want an index", root.MediaType)
	}
	if got := skopeoDigest(t, "oci-archive:"+ociTar+":1"); got != root.Digest {
		t.Errorf("skopeo oci-archive digest %s, metadata %s", got, root.Digest)
	}
	if got := skopeoDigest(t, "oci:"+ociDir+":1"); got != root.Digest {
		t.Errorf("skopeo oci digest %s, metadata %s", got, root.Digest)
	}
	if got := c.inspect("app:1").Digest; got != root.Digest {
		t.Errorf("lade inspect digest %s, metadata %s", got, root.Digest)
	}
	checkPlatforms(t, res[0], "oci-archive:"+ociTar+":1", "oci:"+ociDir+":1")
	checkDockerArchive(t, res[0], dockerTar)
	if _, err := exportertest.Verify(context.Background(), layoutProvider(ociDir), root); err != nil {
		t.Errorf("oracle on %s: %v", ociDir, err)
	}

	saved := filepath.Join(out, "saved.tar")
	c.ok("save", "--progress", "quiet", "app:1", "-o", "type=oci,dest="+saved)
	if got := skopeoDigest(t, "oci-archive:"+saved+":1"); got != root.Digest {
		t.Errorf("lade save: skopeo digest %s, want %s", got, root.Digest)
	}

	bundle := unpackPlatform(t, "oci-archive:"+ociTar+":1", "amd64")
	compareTrees(t, fx.layers[2], filepath.Join(bundle, "rootfs"))
	if got := runBundle(t, bundle, "/bin/busybox", "cat", "/etc/hello"); got != "hello from lade\n" {
		t.Errorf("runc: stdout %q", got)
	}
	c.checkClean()
}

// TestExportSinglePlatform exports with the positional form (a manifest,
// no index) under SOURCE_DATE_EPOCH, twice (the second time to stdout) for
// the same digest, and runs the image's own command with runc.
func TestExportSinglePlatform(t *testing.T) {
	testutil.RequireTool(t, "skopeo", "umoci", "runc")
	fx := newFixture(t)
	c := newRunner(t)
	c.env = []string{"SOURCE_DATE_EPOCH=1700000000"}
	out := t.TempDir()
	layout, md := filepath.Join(out, "layout"), filepath.Join(out, "md.json")
	args := []string{"export", "--progress", "quiet", "--platform", "linux/amd64", "--metadata-file", md,
		"--cmd", `["/bin/cat","/etc/hello-abs"]`, "--env", "GREETING=hi",
		"-o", "type=oci,tar=false,dest=" + layout + ",name=app:1"}
	c.ok(append(args, fx.layers...)...)
	res := readMetadata(t, md)
	checkDropped(t, res[0])
	root := res[0].Result.Descriptor
	if root.MediaType != ocispec.MediaTypeImageManifest {
		t.Fatalf("root media type %s, want a manifest", root.MediaType)
	}
	if got := skopeoDigest(t, "oci:"+layout+":1"); got != root.Digest {
		t.Errorf("skopeo digest %s, metadata %s", got, root.Digest)
	}
	var info struct {
		Created      string
		Architecture string
		Env          []string
		Layers       []string
	}
	mustJSON(t, testutil.Run(t, "skopeo", "inspect", "oci:"+layout+":1"), &info)
	if info.Created != "2023-11-14T22:13:20Z" || info.Architecture != "amd64" || len(info.Layers) != 2 || !strings.Contains(strings.Join(info.Env, " "), "GREETING=hi") {
		t.Errorf("skopeo inspect: %+v", info)
	}
	// dest=- writes the same tar to stdout.
	stdout := c.ok(append([]string{"export", "--progress", "quiet", "--platform", "linux/amd64",
		"--cmd", `["/bin/cat","/etc/hello-abs"]`, "--env", "GREETING=hi", "-o", "type=oci,dest=-,name=app:1"}, fx.layers...)...)
	tarPath := filepath.Join(out, "stdout.tar")
	writeFile(t, tarPath, stdout, 0o644)
	if got := skopeoDigest(t, "oci-archive:"+tarPath+":1"); got != root.Digest {
		t.Errorf("dest=-, same inputs and epoch: skopeo digest %s, want %s", got, root.Digest)
	}
	bundle := filepath.Join(t.TempDir(), "bundle")
	testutil.Run(t, "umoci", "unpack", "--image", layout+":1", bundle)
	compareTrees(t, fx.layers[2], filepath.Join(bundle, "rootfs"))
	if got := runBundle(t, bundle); got != "hello from lade\n" {
		t.Errorf("runc: stdout %q", got)
	}
}

// checkDropped checks the per-layer metadata of every platform: l1 and l2
// new, l3 empty and dropped.
func checkDropped(t *testing.T, r outputResult) {
	t.Helper()
	for _, p := range r.Result.Platforms {
		if len(p.Layers) != 3 {
			t.Errorf("%s %s: %d layers in metadata, want 3", r.Output, p.Platform.Architecture, len(p.Layers))
			continue
		}
		for i, l := range p.Layers {
			if l.Dropped != (i == 2) {
				t.Errorf("%s %s layer %d: dropped=%v, want %v", r.Output, p.Platform.Architecture, i, l.Dropped, i == 2)
			}
		}
	}
}

// checkPlatforms checks with skopeo that the index at every ref lists the
// metadata's manifests, and that each platform's config has two layers and
// a history with the empty layer marked.
func checkPlatforms(t *testing.T, r outputResult, refs ...string) {
	t.Helper()
	for _, ref := range refs {
		var idx ocispec.Index
		mustJSON(t, testutil.Run(t, "skopeo", "inspect", "--raw", ref), &idx)
		if len(idx.Manifests) != len(r.Result.Platforms) {
			t.Fatalf("%s: %d manifests, want %d", ref, len(idx.Manifests), len(r.Result.Platforms))
		}
		for i, p := range r.Result.Platforms {
			if m := idx.Manifests[i]; m.Digest != p.Manifest.Digest || m.Platform == nil || m.Platform.Architecture != p.Platform.Architecture {
				t.Errorf("%s: manifest %d is %s %v, metadata %s %s", ref, i, m.Digest, m.Platform, p.Manifest.Digest, p.Platform.Architecture)
			}
			arch := []string{"--override-arch", p.Platform.Architecture}
			var cfg ocispec.Image
			mustJSON(t, testutil.Run(t, "skopeo", append(arch, "inspect", "--config", "--raw", ref)...), &cfg)
			h := cfg.History
			if cfg.Architecture != p.Platform.Architecture || len(cfg.RootFS.DiffIDs) != 2 || len(h) != 3 || !h[2].EmptyLayer || h[0].EmptyLayer || h[1].EmptyLayer {
				t.Errorf("%s %s: config %+v", ref, p.Platform.Architecture, cfg)
			}
		}
	}
}

// checkDockerArchive checks that each image of a docker archive has the
// metadata's config for its platform.
func checkDockerArchive(t *testing.T, r outputResult, path string) {
	t.Helper()
	configs := map[digest.Digest]bool{}
	for _, p := range r.Result.Platforms {
		configs[p.Config.Digest] = true
	}
	for _, ref := range []string{"docker-archive:" + path + ":@0", "docker-archive:" + path + ":@1", "docker-archive:" + path + ":app:1"} {
		got := digest.FromString(testutil.Run(t, "skopeo", "inspect", "--config", "--raw", ref))
		if !configs[got] {
			t.Errorf("%s: config %s is none of the metadata's %v", ref, got, configs)
		}
	}
}
