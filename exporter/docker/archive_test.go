package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/lade-build/lade/exporter/archive"
	"github.com/lade-build/lade/exporter/archive/archivetest"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// skopeoImage is the part of `skopeo inspect` output the tests check.
type skopeoImage struct {
	Architecture string
	Os           string
	Layers       []digest.Digest
}

// checkInspect fails unless skopeo saw platform p. skopeo's docker-archive
// reader lists layers by diff ID (it serves them uncompressed), its other
// transports by blob digest: byDiffID chooses.
func checkInspect(t *testing.T, si skopeoImage, p archivetest.Platform, byDiffID bool) {
	t.Helper()
	if si.Architecture != p.Platform.Architecture || si.Os != p.Platform.OS || len(si.Layers) != len(p.Layers) {
		t.Fatalf("skopeo inspect: %+v, want %s with %d layers", si, p.Platform.Architecture, len(p.Layers))
	}
	for i, l := range p.Layers {
		want := l.Desc.Digest
		if byDiffID {
			want = l.DiffID
		}
		if si.Layers[i] != want {
			t.Fatalf("skopeo inspect: layer %d is %s, want %s", i, si.Layers[i], want)
		}
	}
}

// writeArchive runs WriteArchive into a file and returns its path and bytes.
func writeArchive(t *testing.T, p content.Provider, root ocispec.Descriptor, opts Options) (string, []byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteArchive(context.Background(), p, root, &buf, opts); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "docker.tar")
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return file, buf.Bytes()
}

// readManifestJSON decodes an archive's manifest.json.
func readManifestJSON(t *testing.T, file string) []ManifestEntry {
	t.Helper()
	tf, err := archive.OpenTar(file)
	if err != nil {
		t.Fatal(err)
	}
	defer tf.Close()
	data, err := tf.ReadFile(ManifestFile)
	if err != nil {
		t.Fatal(err)
	}
	var entries []ManifestEntry
	if err := json.Unmarshal(data, &entries); err != nil {
		t.Fatal(err)
	}
	return entries
}

// TestWriteArchiveMultiPlatformTools validates a 2-platform docker archive with skopeo (both
// transports) and umoci.
func TestWriteArchiveMultiPlatformTools(t *testing.T) {
	cs := archivetest.NewStore(t)
	img := archivetest.Build(t, cs, archivetest.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}})
	arm := img.Platforms[1]
	file, _ := writeArchive(t, cs, img.Root, Options{Names: []string{"lade.test/app:v1", "app"}, Platform: &arm.Platform})
	entries := readManifestJSON(t, file)
	if len(entries) != 2 || entries[0].RepoTags != nil || len(entries[1].RepoTags) != 2 || entries[1].RepoTags[0] != "lade.test/app:v1" || entries[1].RepoTags[1] != "app:latest" {
		t.Fatalf("manifest.json %+v: want 2 entries, tags on the arm64 one", entries)
	}
	var si skopeoImage
	archivetest.Inspect(t, &si, "docker-archive:"+file+":app:latest")
	checkInspect(t, si, arm, true)
	archivetest.Inspect(t, &si, "docker-archive:"+file+":@0")
	checkInspect(t, si, img.Platforms[0], true)
	archivetest.Inspect(t, &si, "--override-arch", "arm64", "oci-archive:"+file+":v1")
	checkInspect(t, si, arm, false)
	// Unpack what docker load would load: manifest.json's arm64 entry.
	single := filepath.Join(t.TempDir(), "single")
	archivetest.Run(t, "skopeo", "--insecure-policy", "copy", "docker-archive:"+file+":lade.test/app:v1", "oci:"+single+":x")
	bundle := filepath.Join(t.TempDir(), "bundle")
	archivetest.Run(t, "umoci", "unpack", "--rootless", "--image", single+":x", bundle)
	archivetest.CheckRootfs(t, filepath.Join(bundle, "rootfs"), arm)
}

// TestWriteArchiveDockerTypes validates Docker-typed archives with skopeo.
func TestWriteArchiveDockerTypes(t *testing.T) {
	cs := archivetest.NewStore(t)
	for _, spec := range []archivetest.Spec{
		{Platforms: []string{"linux/arm64"}, Docker: true, Layers: 3},
		{Platforms: []string{"linux/amd64", "linux/arm/v7"}, Docker: true, Seed: 5},
	} {
		img := archivetest.Build(t, cs, spec)
		file, _ := writeArchive(t, cs, img.Root, Options{Names: []string{"docker-typed"}, Platform: &img.Platforms[0].Platform})
		var si skopeoImage
		archivetest.Inspect(t, &si, "docker-archive:"+file+":docker-typed:latest")
		checkInspect(t, si, img.Platforms[0], true)
		var raw struct{ MediaType string }
		archivetest.Inspect(t, &raw, "--raw", "docker-archive:"+file+":docker-typed:latest")
		if raw.MediaType != archive.MediaTypeDockerManifest {
			t.Fatalf("skopeo sees manifest type %q", raw.MediaType)
		}
	}
}

// TestWriteArchiveDeterministic checks WriteArchive gives the same bytes twice.
func TestWriteArchiveDeterministic(t *testing.T) {
	cs := archivetest.NewStore(t)
	img := archivetest.Build(t, cs, archivetest.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}})
	epoch := time.Unix(1234567890, 0)
	opts := Options{Names: []string{"a", "b:2"}, Epoch: &epoch, Platform: &img.Platforms[0].Platform}
	_, one := writeArchive(t, cs, img.Root, opts)
	_, two := writeArchive(t, cs, img.Root, opts)
	if !bytes.Equal(one, two) {
		t.Fatal("two WriteArchive runs gave different bytes")
	}
}
