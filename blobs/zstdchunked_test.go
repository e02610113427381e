package blobs_test

import (
	"context"
	"runtime"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/lade-build/lade/blobs"
	"github.com/lade-build/lade/cache"
	"github.com/lade-build/lade/exporter/exportertest"
	"github.com/lade-build/lade/internal/testutil"
)

func chunkedTree(id string) *exportertest.MemRef {
	return &exportertest.MemRef{RefID: id, Files: map[string]string{
		"etc/hello": "hello\n", "big": strings.Repeat("0123456789abcdef", 1<<16), "empty": "",
	}}
}

func hasChunkedAnnotations(m map[string]string) bool {
	for _, k := range blobs.ZstdChunkedAnnotationKeys {
		if m[k] == "" {
			return false
		}
	}
	return true
}

// TestZstdChunkedPair: a zstd:chunked layer has zstd's media type, the
// three annotations on its descriptor and as labels on its blob, a blob a
// plain zstd reader turns into the tar of its diffID, and a cache hit
// returns the annotations.
func TestZstdChunkedPair(t *testing.T) {
	ctx := context.Background()
	s, err := local.NewLabeledStore(t.TempDir(), testutil.NewLabelStore())
	if err != nil {
		t.Fatal(err)
	}
	bc := &blobs.MemoryCache{}
	opts := blobs.Options{Compression: blobs.Compression{Type: blobs.ZstdChunked}, Cache: bc}
	pairs, err := blobs.GetDiffPairs(ctx, s, chunkedTree("l"), opts)
	if err != nil {
		t.Fatal(err)
	}
	p := pairs[0]
	if p.Blob.MediaType != "application/vnd.oci.image.layer.v1.tar+zstd" || p.Compression != blobs.ZstdChunked || p.Status != blobs.StatusNew {
		t.Fatalf("pair %+v", p)
	}
	if !hasChunkedAnnotations(p.Blob.Annotations) || p.Blob.Annotations[blobs.LabelUncompressed] != p.DiffID.String() {
		t.Errorf("descriptor annotations %v lack zstd:chunked's or the diffID", p.Blob.Annotations)
	}
	info, err := s.Info(ctx, p.Blob.Digest)
	if err != nil || !hasChunkedAnnotations(info.Labels) {
		t.Errorf("blob labels %v (err %v) lack zstd:chunked's annotations", info.Labels, err)
	}
	rc, err := exportertest.Open(ctx, s, p.Blob)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := exportertest.Decompress(p.Blob.MediaType, rc)
	if dg := digestOf(t, r); dg != p.DiffID.String() {
		t.Errorf("blob decompresses to %s, diffID %s", dg, p.DiffID)
	}
	rc.Close()
	again, err := blobs.GetDiffPairs(ctx, s, chunkedTree("l"), opts)
	if err != nil {
		t.Fatal(err)
	}
	if a := again[0]; a.Status != blobs.StatusReused || a.Blob.Digest != p.Blob.Digest || !hasChunkedAnnotations(a.Blob.Annotations) {
		t.Errorf("cache hit %+v: want the same blob with its annotations", a)
	}
}

// TestZstdChunkedCacheKey: a plain zstd blob cached for a layer is never
// handed out for zstd:chunked, nor the reverse.
func TestZstdChunkedCacheKey(t *testing.T) {
	ctx := context.Background()
	s := store(t)
	bc := &blobs.MemoryCache{}
	compute := func(typ blobs.Type) blobs.DiffPair {
		t.Helper()
		pairs, err := blobs.GetDiffPairs(ctx, s, chunkedTree("k"), blobs.Options{Compression: blobs.Compression{Type: typ}, Cache: bc})
		if err != nil {
			t.Fatal(err)
		}
		return pairs[0]
	}
	plain := compute(blobs.Zstd)
	chunked := compute(blobs.ZstdChunked)
	if chunked.Status != blobs.StatusNew || chunked.Blob.Digest == plain.Blob.Digest || !hasChunkedAnnotations(chunked.Blob.Annotations) {
		t.Errorf("zstd:chunked after zstd: %+v (plain %s)", chunked, plain.Blob.Digest)
	}
	if p := compute(blobs.Zstd); p.Status != blobs.StatusReused || p.Blob.Digest != plain.Blob.Digest || hasChunkedAnnotations(p.Blob.Annotations) {
		t.Errorf("zstd after zstd:chunked: %+v, want the plain blob %s", p, plain.Blob.Digest)
	}
}

// TestZstdChunkedReproducible: the same bytes for one core and for two.
func TestZstdChunkedReproducible(t *testing.T) {
	ctx := context.Background()
	var digests []string
	for _, procs := range []int{1, 2} {
		prev := runtime.GOMAXPROCS(procs)
		pairs, err := blobs.GetDiffPairs(ctx, store(t), chunkedTree("r"), blobs.Options{Compression: blobs.Compression{Type: blobs.ZstdChunked}})
		runtime.GOMAXPROCS(prev)
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, pairs[0].Blob.Digest.String()+" "+pairs[0].Blob.Annotations[blobs.AnnotationZstdChunkedTOC])
	}
	if digests[0] != digests[1] {
		t.Errorf("GOMAXPROCS 1 and 2 give %s and %s", digests[0], digests[1])
	}
}

// TestZstdChunkedBaseLayers: with force-compression a stored zstd:chunked
// layer is kept with its annotations (for zstd:chunked and for zstd), a
// stored plain zstd layer is converted to zstd:chunked, and a zstd:chunked
// layer converted to gzip loses the annotations.
func TestZstdChunkedBaseLayers(t *testing.T) {
	ctx := context.Background()
	s := store(t)
	stored := func(id string, typ blobs.Type) *exportertest.MemRef {
		t.Helper()
		pairs, err := blobs.GetDiffPairs(ctx, s, chunkedTree(id+"-src"), blobs.Options{Compression: blobs.Compression{Type: typ}})
		if err != nil {
			t.Fatal(err)
		}
		ref := chunkedTree(id)
		ref.Blob = &cache.Blob{Descriptor: pairs[0].Blob, DiffID: pairs[0].DiffID}
		return ref
	}
	force := func(ref *exportertest.MemRef, typ blobs.Type) blobs.DiffPair {
		t.Helper()
		pairs, err := blobs.GetDiffPairs(ctx, s, ref, blobs.Options{Compression: blobs.Compression{Type: typ}, Force: true})
		if err != nil {
			t.Fatal(err)
		}
		return pairs[0]
	}
	base := stored("chunked", blobs.ZstdChunked)
	for _, typ := range []blobs.Type{blobs.ZstdChunked, blobs.Zstd} {
		if p := force(base, typ); p.Status != blobs.StatusReused || p.Compression != blobs.ZstdChunked || !hasChunkedAnnotations(p.Blob.Annotations) {
			t.Errorf("zstd:chunked base forced to %s: %+v", typ, p)
		}
	}
	if p := force(stored("plain", blobs.Zstd), blobs.ZstdChunked); p.Status != blobs.StatusConverted || !hasChunkedAnnotations(p.Blob.Annotations) {
		t.Errorf("zstd base forced to zstd:chunked: %+v", p)
	}
	if p := force(base, blobs.Gzip); p.Status != blobs.StatusConverted || p.Compression != blobs.Gzip || hasChunkedAnnotations(p.Blob.Annotations) || len(p.Blob.Annotations) != 1 {
		t.Errorf("zstd:chunked base forced to gzip: %+v", p)
	}
}
