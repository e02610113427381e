package manifestlist_test

import (
	"context"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/lade-build/lade/blobs"
	"github.com/lade-build/lade/exporter"
	"github.com/lade-build/lade/exporter/archive"
	"github.com/lade-build/lade/exporter/exportertest"
	"github.com/lade-build/lade/imagestore"
	"github.com/lade-build/lade/manifestlist"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestListEdit creates a list from a two-platform index and a single
// manifest, then removes, annotates and writes it: the written index
// verifies, keeps its instances by GC labels and reads back the same.
func TestListEdit(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	multi := exportImage(t, s, false, "linux/amd64", "linux/arm64")
	single := exportImage(t, s, false, "linux/s390x")

	l := manifestlist.New(manifestlist.OCI)
	for _, src := range []struct {
		root ocispec.Descriptor
		sel  manifestlist.Select
	}{{multi, manifestlist.Select{All: true}}, {single, manifestlist.Select{}}} {
		insts, err := manifestlist.Instances(ctx, s.Content(), src.root, src.sel)
		must(t, err)
		for _, d := range insts {
			must(t, l.Add(d))
		}
	}
	got := platformsOf(l.Instances())
	if got != "linux/amd64 linux/arm64 linux/s390x" {
		t.Fatalf("instances %s", got)
	}
	insts := l.Instances()
	must(t, l.Add(insts[0])) // adding again replaces in place
	must(t, l.Remove(insts[2].Digest))
	if err := l.Remove(insts[2].Digest); !errdefs.IsNotFound(err) {
		t.Errorf("removing twice: %v, want not found", err)
	}
	must(t, l.Annotate(insts[1].Digest, manifestlist.Edit{Annotations: map[string]string{"k": "v"}}))
	must(t, l.AnnotateIndex(map[string]string{"org.opencontainers.image.title": "t"}))

	desc, err := l.Write(ctx, s.Content())
	must(t, err)
	if _, err := exportertest.Verify(ctx, s.Content(), desc); err != nil {
		t.Fatalf("oracle: %v", err)
	}
	info, err := s.Content().Info(ctx, desc.Digest)
	must(t, err)
	if info.Labels["containerd.io/gc.ref.content.m.0"] != insts[0].Digest.String() || info.Labels["containerd.io/gc.ref.content.m.1"] != insts[1].Digest.String() {
		t.Errorf("labels %v", info.Labels)
	}
	back, err := manifestlist.Read(ctx, s.Content(), desc)
	must(t, err)
	idx := back.Index()
	if platformsOf(idx.Manifests) != "linux/amd64 linux/arm64" || idx.Manifests[1].Annotations["k"] != "v" || idx.Annotations["org.opencontainers.image.title"] != "t" {
		t.Errorf("read back %+v", idx)
	}
	if _, err := manifestlist.Read(ctx, s.Content(), single); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Read of a manifest: %v, want invalid argument", err)
	}
}

// TestInstancesSelect picks one platform of an index, or fails naming it.
func TestInstancesSelect(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	multi := exportImage(t, s, false, "linux/amd64", "linux/arm64")
	arm := ocispec.Platform{OS: "linux", Architecture: "arm64"}
	got, err := manifestlist.Instances(ctx, s.Content(), multi, manifestlist.Select{Platform: &arm})
	must(t, err)
	if platformsOf(got) != "linux/arm64" {
		t.Errorf("picked %s", platformsOf(got))
	}
	ppc := ocispec.Platform{OS: "linux", Architecture: "ppc64le"}
	if _, err := manifestlist.Instances(ctx, s.Content(), multi, manifestlist.Select{Platform: &ppc}); !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "--all") {
		t.Errorf("missing platform: %v", err)
	}
}

// TestDockerList checks a Docker manifest list: OCI instances are refused
// until converted, annotations are refused, and the written list verifies.
func TestDockerList(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	oci := exportImage(t, s, false, "linux/amd64")
	insts, err := manifestlist.Instances(ctx, s.Content(), oci, manifestlist.Select{})
	must(t, err)
	l := manifestlist.New(manifestlist.Docker)
	if err := l.Add(insts[0]); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("OCI manifest into a Docker list: %v", err)
	}
	conv, err := manifestlist.ToDocker(ctx, s.Content(), insts[0])
	must(t, err)
	must(t, l.Add(conv))
	if err := l.Annotate(conv.Digest, manifestlist.Edit{Annotations: map[string]string{"a": "b"}}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("annotating a Docker list: %v", err)
	}
	desc, err := l.Write(ctx, s.Content())
	must(t, err)
	imgs, err := exportertest.Verify(ctx, s.Content(), desc)
	if err != nil {
		t.Fatalf("oracle: %v", err)
	}
	if imgs[0].Manifest.Config.MediaType != archive.MediaTypeDockerConfig || imgs[0].Manifest.Layers[0].MediaType != blobs.MediaTypeDockerLayerGzip {
		t.Errorf("converted manifest %+v", imgs[0].Manifest)
	}
	if desc.MediaType != archive.MediaTypeDockerManifestList {
		t.Errorf("list media type %s", desc.MediaType)
	}
}

// TestVariant adds a zstd variant: same config digest, zstd layers with
// the same diffIDs, the containers/image annotation.
func TestVariant(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	for _, docker := range []bool{false, true} {
		root := exportImage(t, s, docker, "linux/arm64")
		insts, err := manifestlist.Instances(ctx, s.Content(), root, manifestlist.Select{})
		must(t, err)
		v, err := manifestlist.Variant(ctx, s.Content(), insts[0], blobs.Compression{Type: blobs.Zstd}, manifestlist.VariantOptions{Cache: s.BlobCache()})
		must(t, err)
		if v.Annotations[manifestlist.AnnotationZstd] != "true" || v.Platform == nil || v.Platform.Architecture != "arm64" || v.MediaType != ocispec.MediaTypeImageManifest {
			t.Errorf("variant descriptor %+v", v)
		}
		orig, err := exportertest.Verify(ctx, s.Content(), insts[0])
		must(t, err)
		got, err := exportertest.Verify(ctx, s.Content(), v)
		if err != nil {
			t.Fatalf("oracle: %v", err)
		}
		if got[0].Manifest.Config.Digest != orig[0].Manifest.Config.Digest {
			t.Errorf("variant config %s, want %s", got[0].Manifest.Config.Digest, orig[0].Manifest.Config.Digest)
		}
		for i, l := range got[0].Manifest.Layers {
			if l.MediaType != ocispec.MediaTypeImageLayerZstd || got[0].DiffIDs[i] != orig[0].DiffIDs[i] {
				t.Errorf("variant layer %d: %s %s, want zstd of diffID %s", i, l.MediaType, got[0].DiffIDs[i], orig[0].DiffIDs[i])
			}
		}
		l := manifestlist.New(manifestlist.OCI)
		must(t, l.Add(insts[0]))
		must(t, l.Add(v))
		if _, err := l.Write(ctx, s.Content()); err != nil {
			t.Fatal(err)
		}
	}
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]manifestlist.Format{"": manifestlist.OCI, "OCI": manifestlist.OCI, "docker": manifestlist.Docker, "v2s2": manifestlist.Docker} {
		if got, err := manifestlist.ParseFormat(in); err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := manifestlist.ParseFormat("v2s1"); err == nil {
		t.Error("ParseFormat(v2s1) succeeded")
	}
}

func openStore(t *testing.T) *imagestore.Store {
	t.Helper()
	s, err := imagestore.Open(context.Background(), t.TempDir())
	must(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// exportImage exports a two-layer image per platform (an index for more
// than one).
func exportImage(t *testing.T, s *imagestore.Store, docker bool, plats ...string) ocispec.Descriptor {
	t.Helper()
	var src exporter.Source
	for _, p := range plats {
		bottom := &exportertest.MemRef{RefID: "bottom-" + p, Files: map[string]string{"etc/": "", "etc/os": p}}
		top := &exportertest.MemRef{RefID: "top-" + p, Up: bottom, Files: map[string]string{"app": "app for " + p}}
		src.Platforms = append(src.Platforms, exporter.PlatformSource{Platform: p, Ref: top})
	}
	res, err := exporter.NewImageWriter(s.Content()).Commit(context.Background(), src, exporter.Options{Docker: docker})
	must(t, err)
	return res.Descriptor
}

func platformsOf(ds []ocispec.Descriptor) string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Platform.OS+"/"+d.Platform.Architecture)
	}
	return strings.Join(out, " ")
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
