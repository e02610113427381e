package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lade-build/lade/exporter/archive/archivetest"
	"github.com/lade-build/lade/progress"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// skopeoImage is the part of `skopeo inspect` output the tests check.
type skopeoImage struct {
	Digest       digest.Digest
	Architecture string
	Os           string
	Layers       []digest.Digest
}

// TestWriteLayoutMultiPlatformTools validates a 2-platform layout with skopeo and umoci.
func TestWriteLayoutMultiPlatformTools(t *testing.T) {
	ctx := context.Background()
	cs := archivetest.NewStore(t)
	img := archivetest.Build(t, cs, archivetest.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}})
	dir := filepath.Join(t.TempDir(), "layout")
	var rec progress.Recorder
	if err := WriteLayout(ctx, cs, img.Root, dir, Options{Names: []string{"lade.test/app:v1"}, Progress: &rec}); err != nil {
		t.Fatal(err)
	}
	raw := archivetest.Run(t, "skopeo", "--insecure-policy", "inspect", "--raw", "oci:"+dir+":v1")
	if got := digest.FromBytes(bytes.TrimSuffix(raw, []byte("\n"))); got != img.Root.Digest {
		t.Fatalf("skopeo read index %s, want %s", got, img.Root.Digest)
	}
	for _, p := range img.Platforms {
		var si skopeoImage
		archivetest.Inspect(t, &si, "--override-arch", p.Platform.Architecture, "oci:"+dir+":v1")
		checkInspect(t, si, p)
	}
	// umoci cannot unpack a multi-platform layout: copy one platform out.
	single := filepath.Join(t.TempDir(), "single")
	archivetest.Run(t, "skopeo", "--insecure-policy", "copy", "--override-arch", "arm64", "oci:"+dir+":v1", "oci:"+single+":v1")
	bundle := filepath.Join(t.TempDir(), "bundle")
	archivetest.Run(t, "umoci", "unpack", "--rootless", "--image", single+":v1", bundle)
	archivetest.CheckRootfs(t, filepath.Join(bundle, "rootfs"), img.Platforms[1])

	done := map[string]string{}
	for _, e := range rec.Events() {
		if e.Done() {
			done[e.ID] = e.Status
		}
	}
	if want := 1 + 2*(1+1+2); len(done) != want {
		t.Fatalf("progress: %d blobs completed, want %d: %v", len(done), want, done)
	}
	for id, status := range done {
		if status != "written" {
			t.Fatalf("progress %s: status %q, want written", id, status)
		}
	}
}

// TestWriteLayoutSingleManifestUmoci unpacks a single-manifest layout with umoci.
func TestWriteLayoutSingleManifestUmoci(t *testing.T) {
	cs := archivetest.NewStore(t)
	img := archivetest.Build(t, cs, archivetest.Spec{Platforms: []string{"linux/amd64"}, Layers: 3, Seed: 7})
	dir := filepath.Join(t.TempDir(), "layout")
	if err := WriteLayout(context.Background(), cs, img.Root, dir, Options{Names: []string{"app"}}); err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(t.TempDir(), "bundle")
	archivetest.Run(t, "umoci", "unpack", "--rootless", "--image", dir+":latest", bundle)
	archivetest.CheckRootfs(t, filepath.Join(bundle, "rootfs"), img.Platforms[0])
}

// TestWriteLayoutDockerTypes checks a Docker-typed manifest list in a layout (untagged: skopeo only
// looks up OCI-typed entries by tag).
func TestWriteLayoutDockerTypes(t *testing.T) {
	cs := archivetest.NewStore(t)
	img := archivetest.Build(t, cs, archivetest.Spec{Platforms: []string{"linux/amd64", "linux/arm/v7"}, Docker: true})
	dir := filepath.Join(t.TempDir(), "layout")
	if err := WriteLayout(context.Background(), cs, img.Root, dir, Options{}); err != nil {
		t.Fatal(err)
	}
	var si skopeoImage
	archivetest.Inspect(t, &si, "--override-arch", "arm", "--override-variant", "v7", "oci:"+dir)
	checkInspect(t, si, img.Platforms[1])
}

// TestWriteTarTools validates an OCI archive with skopeo and umoci.
func TestWriteTarTools(t *testing.T) {
	cs := archivetest.NewStore(t)
	img := archivetest.Build(t, cs, archivetest.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}, Seed: 3})
	file := filepath.Join(t.TempDir(), "image.tar")
	var buf bytes.Buffer
	if err := WriteTar(context.Background(), cs, img.Root, &buf, Options{Names: []string{"app:v2"}}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	var si skopeoImage
	archivetest.Inspect(t, &si, "--override-arch", "arm64", "oci-archive:"+file+":v2")
	checkInspect(t, si, img.Platforms[1])
	bundle := filepath.Join(t.TempDir(), "bundle")
	single := filepath.Join(t.TempDir(), "single")
	archivetest.Run(t, "skopeo", "--insecure-policy", "copy", "--override-arch", "amd64", "oci-archive:"+file+":v2", "oci:"+single+":v2")
	archivetest.Run(t, "umoci", "unpack", "--rootless", "--image", single+":v2", bundle)
	archivetest.CheckRootfs(t, filepath.Join(bundle, "rootfs"), img.Platforms[0])
}

// checkInspect fails unless skopeo's view of an image (Digest is the
// top-level manifest's, so it is not compared) matches platform p.
func checkInspect(t *testing.T, si skopeoImage, p archivetest.Platform) {
	t.Helper()
	if si.Architecture != p.Platform.Architecture || si.Os != p.Platform.OS || len(si.Layers) != len(p.Layers) {
		t.Fatalf("skopeo inspect: %+v, want %s with %d layers", si, p.Platform.Architecture, len(p.Layers))
	}
	for i, l := range p.Layers {
		if si.Layers[i] != l.Desc.Digest {
			t.Fatalf("skopeo inspect: layer %d is %s, want %s", i, si.Layers[i], l.Desc.Digest)
		}
	}
}

// TestWriteLayoutSharedTags: with SharedTags two names of one tag get an
// entry each, as BuildKit's oci exporter writes them, and skopeo reads
// the tag; without it they are refused.
func TestWriteLayoutSharedTags(t *testing.T) {
	cs := archivetest.NewStore(t)
	img := archivetest.Build(t, cs, archivetest.Spec{Platforms: []string{"linux/amd64"}, Layers: 2, Seed: 9})
	names := []string{"a:1", "example.com/b:1"}
	if err := WriteLayout(context.Background(), cs, img.Root, filepath.Join(t.TempDir(), "x"), Options{Names: names}); err == nil || !strings.Contains(err.Error(), "share the tag") {
		t.Fatalf("two names of one tag without SharedTags: %v, want an error", err)
	}
	dir := filepath.Join(t.TempDir(), "layout")
	if err := WriteLayout(context.Background(), cs, img.Root, dir, Options{Names: names, SharedTags: true}); err != nil {
		t.Fatal(err)
	}
	var idx ocispec.Index
	b, err := os.ReadFile(filepath.Join(dir, ocispec.ImageIndexFile))
	if err == nil {
		err = json.Unmarshal(b, &idx)
	}
	if err != nil || len(idx.Manifests) != 2 {
		t.Fatalf("index.json: %v\n%s", err, b)
	}
	want := []string{"docker.io/library/a:1", "example.com/b:1"}
	for i, m := range idx.Manifests {
		if m.Digest != img.Root.Digest || m.Annotations[ocispec.AnnotationRefName] != "1" || m.Annotations["io.containerd.image.name"] != want[i] {
			t.Errorf("entry %d: %s %v, want %s named %s with tag 1", i, m.Digest, m.Annotations, img.Root.Digest, want[i])
		}
	}
	var si skopeoImage
	archivetest.Inspect(t, &si, "oci:"+dir+":1")
	checkInspect(t, si, img.Platforms[0])
}
