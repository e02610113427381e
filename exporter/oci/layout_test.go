package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/lade-build/lade/cache"
	"github.com/lade-build/lade/exporter/archive"
	"github.com/lade-build/lade/exporter/archive/archivetest"
	"github.com/lade-build/lade/progress"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// readBack reads an exported image into a fresh store and checks it is the
// same image, complete, with GC labels on its parents.
type readBack func(ctx context.Context, ing content.Ingester) (ocispec.Descriptor, error)

// TestRoundTrip writes layouts and tars and reads them back into fresh stores.
func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	for _, spec := range []archivetest.Spec{
		{Platforms: []string{"linux/amd64", "linux/arm64"}},
		{Platforms: []string{"linux/s390x"}, Docker: true, Layers: 1},
		{Platforms: []string{"linux/amd64"}, Index: true, Layers: 3},
	} {
		cs := archivetest.NewStore(t)
		img := archivetest.Build(t, cs, spec)
		dir := filepath.Join(t.TempDir(), "layout")
		opts := Options{Names: []string{"lade.test/round:trip"}}
		if err := WriteLayout(ctx, cs, img.Root, dir, opts); err != nil {
			t.Fatal(err)
		}
		file := writeTarFile(t, cs, img.Root, opts)
		cases := map[string]readBack{
			"dir by tag": func(ctx context.Context, ing content.Ingester) (ocispec.Descriptor, error) {
				return ReadLayout(ctx, dir, "trip", ing)
			},
			"dir, only image": func(ctx context.Context, ing content.Ingester) (ocispec.Descriptor, error) {
				return ReadLayout(ctx, dir, "", ing)
			},
			"tar by full name": func(ctx context.Context, ing content.Ingester) (ocispec.Descriptor, error) {
				return ReadTar(ctx, file, "lade.test/round:trip", ing)
			},
		}
		for name, read := range cases {
			checkReadBack(t, name, read, img)
		}
	}
}

// checkReadBack runs read into a fresh store and checks the image came back
// whole, verified and with GC labels.
func checkReadBack(t *testing.T, name string, read readBack, img archivetest.Image) {
	t.Helper()
	ctx := context.Background()
	fresh := archivetest.NewStore(t)
	got, err := read(ctx, fresh)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if got.Digest != img.Root.Digest || got.MediaType != img.Root.MediaType || got.Annotations != nil {
		t.Fatalf("%s: read %+v, want %s", name, got, img.Root.Digest)
	}
	g, err := archive.Walk(ctx, fresh, got)
	if err != nil {
		t.Fatalf("%s: walk imported image: %v", name, err)
	}
	for _, b := range g.Blobs {
		if err := archive.CopyBlob(ctx, fresh, b.Desc, plainDiscard{}, nil); err != nil {
			t.Fatalf("%s: imported blob: %v", name, err)
		}
		info, err := fresh.Info(ctx, b.Desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if len(info.Labels) != len(b.Children) {
			t.Fatalf("%s: %s has GC labels %v for %d children", name, b.Desc.Digest, info.Labels, len(b.Children))
		}
	}
}

// plainDiscard drops what is written.
type plainDiscard struct{}

// Write drops p.
func (plainDiscard) Write(p []byte) (int, error) { return len(p), nil }

// writeTarFile runs WriteTar into a file and returns its path.
func writeTarFile(t *testing.T, p content.Provider, root ocispec.Descriptor, opts Options) string {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteTar(context.Background(), p, root, &buf, opts); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "image.tar")
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// TestWriteTarDeterministic checks WriteTar gives the same bytes twice, in order, with fixed headers.
func TestWriteTarDeterministic(t *testing.T) {
	cs := archivetest.NewStore(t)
	img := archivetest.Build(t, cs, archivetest.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}, Layers: 3})
	epoch := time.Unix(1700000000, 0)
	for _, opts := range []Options{{Names: []string{"a:1", "b:2"}}, {Epoch: &epoch, Created: &epoch}} {
		var one, two bytes.Buffer
		if err := WriteTar(context.Background(), cs, img.Root, &one, opts); err != nil {
			t.Fatal(err)
		}
		if err := WriteTar(context.Background(), cs, img.Root, &two, opts); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(one.Bytes(), two.Bytes()) {
			t.Fatal("two WriteTar runs gave different bytes")
		}
		names := tarNames(t, one.Bytes(), opts.mtime())
		if names[0] != "oci-layout" || names[len(names)-1] != "index.json" || len(names) != 4+1+2*(1+1+3) {
			t.Fatalf("tar entries %v", names)
		}
	}
}

// TestCorruptBlob checks a corrupt or truncated provider blob fails clearly and leaves no partial file.
func TestCorruptBlob(t *testing.T) {
	ctx := context.Background()
	cs := archivetest.NewStore(t)
	img := archivetest.Build(t, cs, archivetest.Spec{Platforms: []string{"linux/amd64", "linux/arm64"}})
	bad := img.Platforms[1].Layers[1].Desc
	for _, truncate := range []bool{false, true} {
		want := cache.ErrDigestMismatch
		if truncate {
			want = cache.ErrSizeMismatch
		}
		p := archivetest.Corrupt(cs, bad.Digest, truncate)
		dir := filepath.Join(t.TempDir(), "layout")
		var rec progress.Recorder
		err := WriteLayout(ctx, p, img.Root, dir, Options{Names: []string{"x"}, Progress: &rec})
		if !errors.Is(err, want) || !strings.Contains(err.Error(), bad.Digest.String()) {
			t.Fatalf("truncate=%v: WriteLayout error %v, want %v naming %s", truncate, err, want, bad.Digest)
		}
		checkNoPartial(t, dir, bad)
		if !failedInProgress(rec.Events(), bad) {
			t.Fatalf("no failed progress vertex for %s", bad.Digest)
		}
		if err := WriteTar(ctx, p, img.Root, &bytes.Buffer{}, Options{}); !errors.Is(err, want) {
			t.Fatalf("truncate=%v: WriteTar error %v, want %v", truncate, err, want)
		}
	}
}

// checkNoPartial fails if dir holds a temporary file, the bad blob or an
// index.json.
func checkNoPartial(t *testing.T, dir string, bad ocispec.Descriptor) {
	t.Helper()
	blobs := filepath.Join(dir, "blobs", "sha256")
	entries, _ := os.ReadDir(blobs)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp") || e.Name() == bad.Digest.Encoded() {
			t.Fatalf("partial file left: %s", e.Name())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "index.json")); err == nil {
		t.Fatal("index.json written after a failed export")
	}
}

// failedInProgress reports whether a vertex for d completed with an error.
func failedInProgress(events []progress.Event, d ocispec.Descriptor) bool {
	for _, e := range events {
		if e.Done() && e.Error != "" && strings.HasSuffix(e.ID, d.Digest.String()) {
			return true
		}
	}
	return false
}

// TestExistingLayout checks extending a layout: tags move, blobs are kept, a corrupt blob is replaced.
func TestExistingLayout(t *testing.T) {
	ctx := context.Background()
	cs := archivetest.NewStore(t)
	one := archivetest.Build(t, cs, archivetest.Spec{Seed: 1})
	two := archivetest.Build(t, cs, archivetest.Spec{Seed: 2, Platforms: []string{"linux/arm64"}})
	dir := filepath.Join(t.TempDir(), "layout")
	write := func(root ocispec.Descriptor, names ...string) []progress.Event {
		var rec progress.Recorder
		if err := WriteLayout(ctx, cs, root, dir, Options{Names: names, Progress: &rec}); err != nil {
			t.Fatal(err)
		}
		return rec.Events()
	}
	write(one.Root, "app:1", "app:stable")
	write(two.Root, "other:2")
	// Corrupt a blob on disk: the next write must replace it.
	layer := filepath.Join(dir, "blobs", "sha256", one.Platforms[0].Layers[0].Desc.Digest.Encoded())
	os.Chmod(layer, 0o644)
	if err := os.WriteFile(layer, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	events := write(two.Root, "app:stable") // moves the tag
	status := map[string]string{}
	for _, e := range events {
		if e.Done() {
			status[e.ID] = e.Status
		}
	}
	for id, s := range status {
		if s != "exists" {
			t.Fatalf("progress %s: status %q, want exists", id, s)
		}
	}
	write(one.Root, "app:1")
	idx := readIndex(t, dir)
	got := map[string]string{}
	for _, d := range idx.Manifests {
		got[d.Annotations[ocispec.AnnotationRefName]] = d.Digest.String()
	}
	want := map[string]string{"1": one.Root.Digest.String(), "stable": two.Root.Digest.String(), "2": two.Root.Digest.String()}
	if len(idx.Manifests) != 3 || len(got) != 3 || got["1"] != want["1"] || got["stable"] != want["stable"] || got["2"] != want["2"] {
		t.Fatalf("index.json entries %v, want %v", got, want)
	}
	fresh := archivetest.NewStore(t)
	if _, err := ReadLayout(ctx, dir, "1", fresh); err != nil {
		t.Fatalf("layout after repairing a corrupt blob: %v", err)
	}
	if _, err := ReadLayout(ctx, dir, "", fresh); err == nil || !strings.Contains(err.Error(), "choose one by name") {
		t.Fatalf("ReadLayout without a name on a 2-image layout: %v", err)
	}
}

// readIndex decodes dir/index.json.
func readIndex(t *testing.T, dir string) ocispec.Index {
	t.Helper()
	var idx ocispec.Index
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err == nil {
		err = json.Unmarshal(b, &idx)
	}
	if err != nil {
		t.Fatal(err)
	}
	return idx
}
