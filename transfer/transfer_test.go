package transfer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/lade-build/lade/cache"
	"github.com/lade-build/lade/exporter/archive"
	"github.com/lade-build/lade/internal/testutil"
	"github.com/lade-build/lade/progress"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Ref
	}{
		{"app:1", Ref{Kind: KindStore, Name: "app:1"}},
		{"docker:1", Ref{Kind: KindStore, Name: "docker:1"}},
		{"docker://debian", Ref{Kind: KindRegistry, Name: "debian"}},
		{"oci:/tmp/l", Ref{Kind: KindOCI, Path: "/tmp/l"}},
		{"oci:/tmp/l:v1", Ref{Kind: KindOCI, Path: "/tmp/l", Name: "v1"}},
		{"oci:/tmp/a:b/l", Ref{Kind: KindOCI, Path: "/tmp/a:b/l"}},
		{"oci-archive:x.tar:1", Ref{Kind: KindOCIArchive, Path: "x.tar", Name: "1"}},
		{"docker-archive:x.tar:foo:1", Ref{Kind: KindDockerArchive, Path: "x.tar", Name: "foo:1"}},
		{"docker-archive:x.tar", Ref{Kind: KindDockerArchive, Path: "x.tar"}},
	} {
		got, err := Parse(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
		if again, err := Parse(got.String()); err != nil || again != got {
			t.Errorf("Parse(%q.String()) = %+v, %v", tc.in, again, err)
		}
	}
	for _, bad := range []string{"", "oci:", "docker://", "http://x/y"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) succeeded", bad)
		}
	}
}

// memProvider serves blobs from memory.
type memProvider map[digest.Digest][]byte

func (m memProvider) ReaderAt(_ context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	b, ok := m[desc.Digest]
	if !ok {
		return nil, errdefs.ErrNotFound
	}
	return bytesReaderAt(b), nil
}

// add stores b and returns its descriptor.
func (m memProvider) add(mt string, b []byte) ocispec.Descriptor {
	d := ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(b), Size: int64(len(b))}
	m[d.Digest] = b
	return d
}

// fixture is a two-platform index with one layer each.
func fixture(t *testing.T) (memProvider, ocispec.Descriptor, []ocispec.Descriptor) {
	m := memProvider{}
	var mans []ocispec.Descriptor
	for _, arch := range []string{"amd64", "arm64"} {
		layer := m.add(ocispec.MediaTypeImageLayer, []byte("layer "+arch))
		cfg, _ := json.Marshal(ocispec.Image{Platform: ocispec.Platform{OS: "linux", Architecture: arch}})
		config := m.add(ocispec.MediaTypeImageConfig, cfg)
		mb, _ := json.Marshal(ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: config, Layers: []ocispec.Descriptor{layer}})
		d := m.add(ocispec.MediaTypeImageManifest, mb)
		d.Platform = &ocispec.Platform{OS: "linux", Architecture: arch}
		mans = append(mans, d)
	}
	ib, err := json.Marshal(ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: mans})
	if err != nil {
		t.Fatal(err)
	}
	return m, m.add(ocispec.MediaTypeImageIndex, ib), mans
}

func TestNarrow(t *testing.T) {
	ctx := context.Background()
	m, root, mans := fixture(t)
	arm := ocispec.Platform{OS: "linux", Architecture: "arm64"}
	amd := ocispec.Platform{OS: "linux", Architecture: "amd64"}
	if _, got, err := narrow(ctx, m, root, Options{All: true}); err != nil || got.Digest != root.Digest {
		t.Errorf("All: %v, %v", got.Digest, err)
	}
	if _, got, err := narrow(ctx, m, root, Options{Platforms: []ocispec.Platform{arm}}); err != nil || got.Digest != mans[1].Digest {
		t.Errorf("arm64: %v, %v", got.Digest, err)
	}
	p, got, err := narrow(ctx, m, root, Options{Platforms: []ocispec.Platform{arm, amd}})
	if err != nil || !archive.IsIndex(got.MediaType) || got.Digest == root.Digest {
		t.Fatalf("two platforms: %+v, %v", got, err)
	}
	g, err := archive.Walk(ctx, p, got)
	if err != nil || len(g.Images) != 2 || g.Images[0].Manifest.Digest != mans[1].Digest {
		t.Fatalf("the new index does not list arm64 then amd64: %+v, %v", g, err)
	}
	if _, _, err := narrow(ctx, m, root, Options{Platforms: []ocispec.Platform{{OS: "linux", Architecture: "s390x"}}}); err == nil ||
		!strings.Contains(err.Error(), "linux/amd64, linux/arm64") {
		t.Errorf("missing platform: %v", err)
	}
	host := platforms.DefaultSpec()
	if _, got, err := narrow(ctx, m, root, Options{}); host.OS == "linux" && (host.Architecture == "amd64" || host.Architecture == "arm64") {
		if err != nil || got.Platform == nil || got.Platform.Architecture != host.Architecture {
			t.Errorf("default picks the host's platform: %+v, %v", got, err)
		}
	}
}

func TestImport(t *testing.T) {
	ctx := namespaces.WithNamespace(context.Background(), "test")
	m, root, _ := fixture(t)
	_, store := testutil.ContentStores(t)
	var rec progress.Recorder
	if err := Import(ctx, m, root, store, &rec); err != nil {
		t.Fatal(err)
	}
	for d := range m {
		if _, err := store.Info(ctx, d); err != nil {
			t.Errorf("blob %s not imported: %v", d, err)
		}
	}
	statuses := func() map[string]int {
		n := map[string]int{}
		for _, e := range rec.Events() {
			if e.Done() {
				n[e.Status]++
			}
		}
		return n
	}
	if got := statuses(); got[StatusCopied] != len(m) {
		t.Errorf("first import: %v, want %d copied", got, len(m))
	}
	// Again: no config or layer is read (the provider now fails those
	// reads; manifests are read to walk the graph).
	rec = progress.Recorder{}
	if err := Import(ctx, failing{m}, root, store, &rec); err != nil {
		t.Fatal(err)
	}
	if got := statuses(); got[StatusExists] != len(m) {
		t.Errorf("second import: %v, want all %d blobs reported as existing", got, len(m))
	}
}

// failing serves indexes and manifests and fails any other read.
type failing struct{ memProvider }

func (f failing) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	if archive.IsIndex(desc.MediaType) || archive.IsManifest(desc.MediaType) {
		return f.memProvider.ReaderAt(ctx, desc)
	}
	return nil, errors.New("read a blob the store has")
}

func TestImportVerifies(t *testing.T) {
	ctx := namespaces.WithNamespace(context.Background(), "test")
	m, root, mans := fixture(t)
	var mb ocispec.Manifest
	if err := json.Unmarshal(m[mans[0].Digest], &mb); err != nil {
		t.Fatal(err)
	}
	layer := mb.Layers[0]
	m[layer.Digest] = bytes.ToUpper(m[layer.Digest]) // same size, wrong digest
	_, store := testutil.ContentStores(t)
	err := Import(ctx, m, root, store, nil)
	if !errors.Is(err, cache.ErrDigestMismatch) {
		t.Fatalf("want a digest mismatch, got %v", err)
	}
	if _, err := store.Info(ctx, layer.Digest); !errdefs.IsNotFound(err) {
		t.Errorf("the corrupt layer was committed: %v", err)
	}
	if _, err := store.Info(ctx, root.Digest); !errdefs.IsNotFound(err) {
		t.Errorf("the index was committed over a failed child: %v", err)
	}
	sts, _ := store.ListStatuses(ctx)
	if len(sts) != 0 {
		t.Errorf("ingests left: %v", sts)
	}
}

func TestLayoutNames(t *testing.T) {
	if got := layoutNames("127.0.0.1:5000/team/app:1", "v2"); len(got) != 1 || got[0] != "127.0.0.1:5000/team/app:v2" {
		t.Errorf("got %v", got)
	}
	if got := layoutNames(storeName("oci-archive:x.tar", Ref{Kind: KindOCIArchive, Path: "x.tar"}), "v2"); got[0] != "localhost/lade-copy:v2" {
		t.Errorf("got %v", got)
	}
	if got := layoutNames("x", ""); got != nil {
		t.Errorf("got %v", got)
	}
}
