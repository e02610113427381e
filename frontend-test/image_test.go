//go:build integration

package frontendtest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lade-build/lade/blobs"
	"github.com/lade-build/lade/internal/testutil"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// checkMainImage checks the image of mainDockerfile: the empty RUN layer is
// gone from the manifest and marked empty_layer in the history, and the
// image runs with runc: files, the whiteout, ENV.
func checkMainImage(t *testing.T, dir, tag string) {
	t.Helper()
	l := openLayoutDir(t, dir)
	if l.root.MediaType != ocispec.MediaTypeImageManifest {
		t.Fatalf("root is %s, want a single OCI manifest", l.root.MediaType)
	}
	img := l.verify(t)[0]
	if n := len(img.Manifest.Layers); n != mainLayers {
		t.Fatalf("%d layers, want %d (the empty RUN dropped)", n, mainLayers)
	}
	for _, d := range img.Config.RootFS.DiffIDs {
		if d == blobs.EmptyTarDiffID {
			t.Fatalf("empty layer kept: %v", img.Config.RootFS.DiffIDs)
		}
	}
	var sawTrue bool
	for _, h := range img.Config.History {
		if strings.Contains(h.CreatedBy, "RUN /bin/sh -c true") {
			sawTrue = true
			if !h.EmptyLayer {
				t.Fatalf("history of the empty RUN not marked empty_layer: %+v", h)
			}
		}
	}
	if !sawTrue {
		t.Fatalf("no history entry for the empty RUN: %+v", img.Config.History)
	}
	out := runImage(t, dir, tag, "/bin/sh", "-c",
		`cat /etc/app/hello.txt; test -e /etc/app/bye.txt || echo whiteout-ok; cat /done.txt; echo "$GREETING"`)
	mustContain(t, "runc output", out, "hello\n", "whiteout-ok\n", "done\n", "hi-from-lade\n")
}

// TestPushToRegistry: buildctl build --output
// type=image,name=127.0.0.1:PORT/x,push=true,registry.insecure=true against
// lade-buildkitd pushes a valid, runnable image.
func TestPushToRegistry(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	d := startDaemon(t, lade, "")
	ctx := contextDir(t, mainDockerfile, nil)
	ref := reg.Host + "/lade/x:v1"
	md := filepath.Join(t.TempDir(), "md.json")
	out := d.mustBuild(t, ctx, "--output", "type=image,name="+ref+",push=true,registry.insecure=true", "--metadata-file", md)
	mustContain(t, "progress", out, "exporting to image", "exporting with lade", "compressing layer", "dropping empty layer", "pushing manifest for "+ref)

	raw := skopeo(t, "inspect", "--tls-verify=false", "--raw", "docker://"+ref)
	var m ocispec.Manifest
	if err := json.Unmarshal([]byte(raw), &m); err != nil || m.MediaType != ocispec.MediaTypeImageManifest {
		t.Fatalf("pushed manifest: %v\n%s", err, raw)
	}
	var meta map[string]any
	b, _ := os.ReadFile(md)
	if err := json.Unmarshal(b, &meta); err != nil {
		t.Fatal(err)
	}
	dgst := skopeo(t, "inspect", "--tls-verify=false", "--format", "{{.Digest}}", "docker://"+ref)
	if meta["containerimage.digest"] != strings.TrimSpace(dgst) {
		t.Fatalf("metadata digest %v, registry %s", meta["containerimage.digest"], dgst)
	}
	report := meta["lade.export"].(map[string]any)["platforms"].([]any)[0].(map[string]any)
	if n := len(report["layers"].([]any)); n != mainLayers+1 {
		t.Fatalf("lade.export lists %d layers, want %d", n, mainLayers+1)
	}

	dir := filepath.Join(t.TempDir(), "oci")
	skopeo(t, "copy", "--src-tls-verify=false", "docker://"+ref, "oci:"+dir+":v1")
	checkMainImage(t, dir, "v1")
}

// TestOCIAndDockerOutputs checks type=oci (tar and directory) and
// type=docker outputs with skopeo, umoci and runc.
func TestOCIAndDockerOutputs(t *testing.T) {
	d := startDaemon(t, lade, "")
	ctx := contextDir(t, mainDockerfile, nil)
	tmp := t.TempDir()

	ociTar := filepath.Join(tmp, "x.tar")
	d.mustBuild(t, ctx, "--output", "type=oci,dest="+ociTar+",name=lade/x:v1")
	mustContain(t, "skopeo oci-archive", skopeo(t, "inspect", "oci-archive:"+ociTar), `"org.example.test": "lade"`)
	checkMainImage(t, extract(t, ociTar), "v1")

	ociDir := filepath.Join(tmp, "layout")
	d.mustBuild(t, ctx, "--output", "type=oci,tar=false,dest="+ociDir+",name=lade/x:v2")
	mustContain(t, "skopeo oci dir", skopeo(t, "inspect", "oci:"+ociDir+":v2"), `"org.example.test": "lade"`)

	dockerTar := filepath.Join(tmp, "d.tar")
	d.mustBuild(t, ctx, "--output", "type=docker,dest="+dockerTar+",name=lade/x:v3")
	mustContain(t, "skopeo docker-archive", skopeo(t, "inspect", "docker-archive:"+dockerTar), `"org.example.test": "lade"`)
	ex := extract(t, dockerTar)
	var entries []struct {
		Config           string
		RepoTags, Layers []string
	}
	b, err := os.ReadFile(filepath.Join(ex, "manifest.json"))
	if err != nil || json.Unmarshal(b, &entries) != nil || len(entries) != 1 {
		t.Fatalf("manifest.json: %v %s", err, b)
	}
	if len(entries[0].Layers) != mainLayers || entries[0].RepoTags[0] != "lade/x:v3" {
		t.Fatalf("manifest.json entry %+v", entries[0])
	}
	openLayoutDir(t, ex).verify(t)
}

// TestUncompressedLayers: with compression=uncompressed (BuildKit's own
// writer: a pipelined one measured no faster, see docs/performance.md) the
// layers have the uncompressed media type, each blob digest is its diffID,
// and the image runs. A type=docker output of the same build with Docker
// media types reuses the blobs under Docker's tar media type.
func TestUncompressedLayers(t *testing.T) {
	d := startDaemon(t, lade, "")
	ctx := contextDir(t, mainDockerfile, nil)
	tmp := t.TempDir()
	check := func(what string, l *layout, mediaType string) {
		t.Helper()
		img := l.verify(t)[0]
		if len(img.Manifest.Layers) != mainLayers {
			t.Fatalf("%s: %d layers, want %d", what, len(img.Manifest.Layers), mainLayers)
		}
		for n, desc := range img.Manifest.Layers {
			if desc.MediaType != mediaType || desc.Digest != img.Config.RootFS.DiffIDs[n] {
				t.Fatalf("%s: layer %d is %s %s, diffID %s; want %s with the diffID as digest", what, n, desc.MediaType, desc.Digest, img.Config.RootFS.DiffIDs[n], mediaType)
			}
		}
	}

	ociTar := filepath.Join(tmp, "u.tar")
	d.mustBuild(t, ctx, "--output", "type=oci,dest="+ociTar+",name=lade/u:v1,compression=uncompressed")
	dir := extract(t, ociTar)
	check("oci", openLayoutDir(t, dir), ocispec.MediaTypeImageLayer)
	checkMainImage(t, dir, "v1")

	dockerTar := filepath.Join(tmp, "d.tar")
	out := d.mustBuild(t, ctx, "--output", "type=docker,dest="+dockerTar+",name=lade/u:v2,compression=uncompressed,oci-mediatypes=false")
	mustContain(t, "docker progress", out, "reusing layer")
	check("docker", openLayoutTar(t, dockerTar), blobs.MediaTypeDockerLayer)
}

// TestMultiStage builds an artifact in one stage, copies it into the final
// image and runs the image's own command.
func TestMultiStage(t *testing.T) {
	d := startDaemon(t, lade, "")
	ctx := contextDir(t, multiStageDockerfile, nil)
	tarPath := filepath.Join(t.TempDir(), "x.tar")
	d.mustBuild(t, ctx, "--output", "type=oci,dest="+tarPath+",name=lade/multistage:v1")
	dir := extract(t, tarPath)
	img := openLayoutDir(t, dir).verify(t)[0]
	if len(img.Manifest.Layers) != 2 {
		t.Fatalf("%d layers, want 2 (busybox, artifact)", len(img.Manifest.Layers))
	}
	mustContain(t, "runc output", runImage(t, dir, "v1"), "built-in-stage\n")
}

// TestMultiPlatform builds linux/amd64 and linux/arm64 by COPY only into
// an index (type=oci) and a multi-platform docker archive (type=docker).
func TestMultiPlatform(t *testing.T) {
	d := startDaemon(t, lade, "")
	ctx := multiPlatformContext(t)
	tmp := t.TempDir()
	ociTar := filepath.Join(tmp, "x.tar")
	d.mustBuild(t, ctx, "--opt", "platform=linux/amd64,linux/arm64", "--output", "type=oci,dest="+ociTar+",name=lade/mp:v1")
	l := openLayoutTar(t, ociTar)
	if l.root.MediaType != ocispec.MediaTypeImageIndex {
		t.Fatalf("root %s, want an index", l.root.MediaType)
	}
	imgs := l.verify(t)
	if len(imgs) != 2 || imgs[0].Config.Architecture != "amd64" || imgs[1].Config.Architecture != "arm64" {
		t.Fatalf("images %+v", imgs)
	}
	dir := extract(t, ociTar)
	mustContain(t, "skopeo arm64", skopeo(t, "inspect", "--override-arch", "arm64", "oci:"+dir+":v1"), `"Architecture": "arm64"`)

	dockerTar := filepath.Join(tmp, "d.tar")
	d.mustBuild(t, ctx, "--opt", "platform=linux/amd64,linux/arm64", "--output", "type=docker,dest="+dockerTar+",name=lade/mp:v1")
	ex := extract(t, dockerTar)
	var entries []struct{ RepoTags []string }
	b, _ := os.ReadFile(filepath.Join(ex, "manifest.json"))
	if err := json.Unmarshal(b, &entries); err != nil || len(entries) != 2 {
		t.Fatalf("manifest.json of a multi-platform docker archive: %v %s", err, b)
	}
	// skopeo 1.9 reads one manifest.json entry, chosen by its tag.
	mustContain(t, "skopeo docker-archive", skopeo(t, "inspect", "docker-archive:"+dockerTar+":lade/mp:v1"), `"Architecture": "amd64"`)
}

// TestMisspelledAttribute: an unknown exporter attribute fails the build
// with lade's error naming the nearest valid key.
func TestMisspelledAttribute(t *testing.T) {
	d := startDaemon(t, lade, "")
	ctx := contextDir(t, multiPlatformDockerfile, map[string]string{"hello.txt": "x", "arch-amd64.txt": "a"})
	out, err := d.build(t, ctx, "--output", "type=image,name=lade/x:v1,psh=true")
	if err == nil {
		t.Fatalf("build with psh=true succeeded:\n%s", out)
	}
	mustContain(t, "buildctl error", out, `image exporter: unknown attribute "psh": did you mean "push"?`)
	out, err = d.build(t, ctx, "--output", "type=oci,dest="+filepath.Join(t.TempDir(), "x.tar")+",compresion=zstd")
	if err == nil {
		t.Fatalf("build with compresion=zstd succeeded:\n%s", out)
	}
	mustContain(t, "buildctl error", out, `unknown attribute "compresion": did you mean "compression"?`)
}
