package exporter_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/lade-build/lade/cache"
	"github.com/lade-build/lade/exporter"
	"github.com/lade-build/lade/exporter/exportertest"
	"github.com/lade-build/lade/internal/testutil"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// readCounter counts the reads of one blob.
type readCounter struct {
	content.Store
	blob  digest.Digest
	reads atomic.Int32
}

func (r *readCounter) ReaderAt(ctx context.Context, d ocispec.Descriptor) (content.ReaderAt, error) {
	if d.Digest == r.blob {
		r.reads.Add(1)
	}
	return r.Store.ReaderAt(ctx, d)
}

// TestCommitSociStoredLayerPersisted: a stored layer gzipped by
// compress/gzip (as docker and stock BuildKit write base layers) gets a
// zTOC from one read, recorded in the store's labels, so that an export
// in a new process (a new writer over a new store value on the same
// content) reuses it without reading the layer again.
func TestCommitSociStoredLayerPersisted(t *testing.T) {
	ctx := context.Background()
	dir, labels := t.TempDir(), testutil.NewLabelStore()
	open := func(blob digest.Digest) *readCounter {
		s, err := local.NewLabeledStore(dir, labels)
		if err != nil {
			t.Fatal(err)
		}
		return &readCounter{Store: s, blob: blob}
	}
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	for i := range 6 {
		data := []byte(strings.Repeat(fmt.Sprintf("line of file %d\n", i), 40000+i*7000))
		tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("f%d", i), Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg})
		tw.Write(data)
	}
	tw.Close()
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write(tb.Bytes())
	zw.Close()
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(zb.Bytes()), Size: int64(zb.Len())}
	first := open(desc.Digest)
	if err := content.WriteBlob(ctx, first, "layer", bytes.NewReader(zb.Bytes()), desc); err != nil {
		t.Fatal(err)
	}
	opts := exporter.Options{Soci: true, SociSpanSize: 256 << 10, SociMinLayerSize: -1}
	commit := func(s *readCounter) exporter.LayerResult {
		ref := &exportertest.MemRef{RefID: "base", Desc: "base", Blob: &cache.Blob{Descriptor: desc, DiffID: digest.FromBytes(tb.Bytes())}}
		res, err := exporter.NewImageWriter(s).Commit(ctx, exporter.Source{Platforms: []exporter.PlatformSource{{Platform: "linux/amd64", Ref: ref, BaseLayers: 1}}}, opts)
		if err != nil {
			t.Fatal(err)
		}
		return res.Platforms[0].Layers[0]
	}
	built := commit(first)
	if built.Ztoc == "" || built.ZtocSpans < 3 || first.reads.Load() != 1 {
		t.Fatalf("compress/gzip layer: zTOC %q, %d spans, layer read %d times; want a zTOC of several spans from one read", built.Ztoc, built.ZtocSpans, first.reads.Load())
	}
	again := open(desc.Digest)
	reused := commit(again)
	if reused.Ztoc != built.Ztoc || reused.ZtocSpans != built.ZtocSpans {
		t.Errorf("new process: zTOC %s (%d spans), want %s (%d)", reused.Ztoc, reused.ZtocSpans, built.Ztoc, built.ZtocSpans)
	}
	if n := again.reads.Load(); n != 0 {
		t.Errorf("new process read the layer %d times for its zTOC, want 0 (the label names it)", n)
	}
}
