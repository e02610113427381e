package docker

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lade-build/lade/cache"
	"github.com/lade-build/lade/exporter/archive"
	"github.com/lade-build/lade/exporter/archive/archivetest"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestRoundTrip writes an archive and reads it back by every kind of ref.
func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	cs := archivetest.NewStore(t)
	img := archivetest.Build(t, cs, archivetest.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}, Docker: true})
	file, _ := writeArchive(t, cs, img.Root, Options{Names: []string{"lade.test/app:v1"}, Platform: &img.Platforms[0].Platform})
	for ref, want := range map[string]ocispec.Descriptor{
		"":                 img.Root,
		"lade.test/app:v1": img.Root,
		"v1":               img.Root,
		"@1":               img.Platforms[1].Manifest,
	} {
		fresh := archivetest.NewStore(t)
		got, err := ReadArchive(ctx, file, ref, fresh)
		if err != nil {
			t.Fatalf("ReadArchive %q: %v", ref, err)
		}
		if got.Digest != want.Digest || got.MediaType != want.MediaType {
			t.Fatalf("ReadArchive %q: %s %s, want %s", ref, got.MediaType, got.Digest, want.Digest)
		}
		if _, err := archive.Walk(ctx, fresh, got); err != nil {
			t.Fatalf("ReadArchive %q: imported image incomplete: %v", ref, err)
		}
	}
	if _, err := ReadArchive(ctx, file, "other:v1", archivetest.NewStore(t)); err == nil || !strings.Contains(err.Error(), "lade.test/app:v1") {
		t.Fatalf("ReadArchive of a missing tag: %v, want the tags listed", err)
	}
}

// TestReadSkopeoArchive reads a legacy archive written by skopeo (manifest.json,
// uncompressed <digest>.tar layers, no OCI layout).
func TestReadSkopeoArchive(t *testing.T) {
	ctx := context.Background()
	cs := archivetest.NewStore(t)
	img := archivetest.Build(t, cs, archivetest.Spec{Platforms: []string{"linux/arm64"}, Layers: 3})
	file, _ := writeArchive(t, cs, img.Root, Options{Names: []string{"app"}})
	legacy := filepath.Join(t.TempDir(), "legacy.tar")
	archivetest.Run(t, "skopeo", "--insecure-policy", "copy", "docker-archive:"+file, "docker-archive:"+legacy+":legacy/app:1")
	fresh := archivetest.NewStore(t)
	desc, err := ReadArchive(ctx, legacy, "legacy/app:1", fresh)
	if err != nil {
		t.Fatal(err)
	}
	if desc.MediaType != archive.MediaTypeDockerManifest || desc.Platform == nil || desc.Platform.Architecture != "arm64" {
		t.Fatalf("synthesized %+v", desc)
	}
	g, err := archive.Walk(ctx, fresh, desc)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range g.Images[0].Layers {
		if l.Digest != img.Platforms[0].Layers[i].DiffID || l.MediaType != archive.MediaTypeDockerLayer {
			t.Fatalf("layer %d: %s %s, want the uncompressed %s", i, l.MediaType, l.Digest, img.Platforms[0].Layers[i].DiffID)
		}
	}
	// What was imported exports again and unpacks to the same files.
	again, _ := writeArchive(t, fresh, desc, Options{Names: []string{"again"}})
	single := filepath.Join(t.TempDir(), "single")
	archivetest.Run(t, "skopeo", "--insecure-policy", "copy", "docker-archive:"+again, "oci:"+single+":x")
	bundle := filepath.Join(t.TempDir(), "bundle")
	archivetest.Run(t, "umoci", "unpack", "--rootless", "--image", single+":x", bundle)
	archivetest.CheckRootfs(t, filepath.Join(bundle, "rootfs"), img.Platforms[0])
}

// TestReadLegacyDockerSave reads the layout of `docker save` before Docker
// 25: <id>/layer.tar (plain or gzip), a repeated layer as a symlink, the
// config as <hex>.json.
func TestReadLegacyDockerSave(t *testing.T) {
	plain := tarOf(t, "a.txt", "first")
	plainID := digest.FromBytes(plain)
	second := tarOf(t, "b.txt", "second")
	gz := gzipOf(t, second)
	cfg, _ := json.Marshal(ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: "riscv64"},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{plainID, digest.FromBytes(second), plainID}},
	})
	cfgName := digest.FromBytes(cfg).Encoded() + ".json"
	manifest, _ := json.Marshal([]ManifestEntry{{Config: cfgName, RepoTags: []string{"old:1"}, Layers: []string{"l1/layer.tar", "l2/layer.tar", "l3/layer.tar"}}})
	entries := []archivetest.Entry{
		{Name: "l1/", Type: tar.TypeDir}, {Name: "l1/layer.tar", Data: plain},
		{Name: "l2/", Type: tar.TypeDir}, {Name: "l2/layer.tar", Data: gz},
		{Name: "l3/", Type: tar.TypeDir}, {Name: "l3/layer.tar", Type: tar.TypeSymlink, Link: "../l1/layer.tar"},
		{Name: cfgName, Data: cfg}, {Name: "manifest.json", Data: manifest},
		{Name: "repositories", Data: []byte(`{"old":{"1":"x"}}`)},
	}
	file := filepath.Join(t.TempDir(), "old.tar")
	archivetest.WriteTar(t, file, entries)
	fresh := archivetest.NewStore(t)
	desc, err := ReadArchive(context.Background(), file, "", fresh)
	if err != nil {
		t.Fatal(err)
	}
	g, err := archive.Walk(context.Background(), fresh, desc)
	if err != nil {
		t.Fatal(err)
	}
	got := g.Images[0].Layers
	if len(got) != 3 || got[0].MediaType != archive.MediaTypeDockerLayer || got[1].MediaType != archive.MediaTypeDockerLayerGzip || got[1].Digest != digest.FromBytes(gz) || got[2].Digest != plainID {
		t.Fatalf("synthesized layers %+v", got)
	}
	// A plain layer that is not its diff_id is refused.
	entries[1].Data = tarOf(t, "a.txt", "tampered")
	archivetest.WriteTar(t, file, entries)
	if _, err := ReadArchive(context.Background(), file, "old:1", archivetest.NewStore(t)); !errors.Is(err, cache.ErrDigestMismatch) {
		t.Fatalf("tampered plain layer: %v", err)
	}
}

// tarOf returns a tar holding one file.
func tarOf(t *testing.T, name, data string) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data))})
	tw.Write([]byte(data))
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// gzipOf gzips b.
func gzipOf(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestReadArchiveHostile checks hostile entry names fail the import.
func TestReadArchiveHostile(t *testing.T) {
	for name, entries := range map[string][]archivetest.Entry{
		"dot-dot":  {{Name: "manifest.json", Data: []byte("[]")}, {Name: "x/../../evil", Data: []byte("x")}},
		"absolute": {{Name: "/manifest.json", Data: []byte("[]")}},
	} {
		file := filepath.Join(t.TempDir(), "bad.tar")
		archivetest.WriteTar(t, file, entries)
		if _, err := ReadArchive(context.Background(), file, "", archivetest.NewStore(t)); err == nil || !strings.Contains(err.Error(), "not allowed") {
			t.Errorf("%s: ReadArchive error %v", name, err)
		}
	}
}

// TestWriteArchiveCorruptBlob checks a corrupt provider blob fails with its digest named.
func TestWriteArchiveCorruptBlob(t *testing.T) {
	cs := archivetest.NewStore(t)
	img := archivetest.Build(t, cs, archivetest.Spec{})
	bad := img.Platforms[0].Config
	for _, truncate := range []bool{false, true} {
		p := archivetest.Corrupt(cs, bad.Digest, truncate)
		err := WriteArchive(context.Background(), p, img.Root, &bytes.Buffer{}, Options{})
		if err == nil || !strings.Contains(err.Error(), bad.Digest.String()) {
			t.Fatalf("truncate=%v: WriteArchive error %v, want one naming %s", truncate, err, bad.Digest)
		}
	}
}
