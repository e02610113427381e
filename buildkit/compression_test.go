package buildkit

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"io"
	"testing"

	bkcompression "github.com/moby/buildkit/util/compression"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// compressWith runs BuildKit's use of a compression type: Compress, write,
// Close twice (BuildKit's overlay differ defers a second Close).
func compressWith(t *testing.T, ctx context.Context, ct bkcompression.Type, level *int, data []byte) []byte {
	t.Helper()
	fn, fin := ct.Compress(ctx, bkcompression.Config{Type: ct, Level: level})
	if fin != nil {
		t.Fatal("unexpected finalizer")
	}
	var buf bytes.Buffer
	w, err := fn(&buf, ct.MediaType())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	return buf.Bytes()
}

func TestLadeGzipInBuildKitPipeline(t *testing.T) {
	data := bytes.Repeat([]byte("lade layer data "), 1<<17)
	tr := &tracker{}
	ctx := withTracker(context.Background(), tr)
	out := compressWith(t, ctx, ladeGzip, nil, data)
	zr, err := gzip.NewReader(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	back, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(back, data) {
		t.Fatalf("round trip failed: %v", err)
	}
	sum := sha256.Sum256(out)
	fb, ok := tr.freshBlob(digest.NewDigestFromBytes(digest.SHA256, sum[:]))
	if !ok || fb.Uncompressed != int64(len(data)) || fb.Compressed != int64(len(out)) {
		t.Fatalf("tracker: %+v %v", fb, ok)
	}
	if again := compressWith(t, context.Background(), ladeGzip, nil, data); !bytes.Equal(again, out) {
		t.Error("lade gzip not deterministic")
	}
	lvl := 1
	if fast := compressWith(t, ctx, ladeGzip, &lvl, data); bytes.Equal(fast, out) {
		t.Error("compression level ignored")
	}
}

func TestLadeTypesBehaveLikeBuildKits(t *testing.T) {
	for _, c := range []struct{ lade, bk bkcompression.Type }{{ladeGzip, bkcompression.Gzip}, {ladeZstd, bkcompression.Zstd}} {
		if c.lade.String() != c.bk.String() || c.lade.MediaType() != c.bk.MediaType() || c.lade.OnlySupportOCITypes() != c.bk.OnlySupportOCITypes() {
			t.Errorf("%s: differs from BuildKit's type", c.lade)
		}
		// false: layers BuildKit's overlayfs differ does not take go to
		// the worker's differ (lade's), not to BuildKit's walking differ.
		if c.lade.NeedsComputeDiffBySelf(bkcompression.Config{}) {
			t.Errorf("%s: BuildKit would bypass the worker's differ", c.lade)
		}
	}
	// BuildKit's zstd type decides from the media type alone.
	for mt, want := range map[string]bool{ocispecs.MediaTypeImageLayerGzip: true, ocispecs.MediaTypeImageLayerZstd: false} {
		got, err := ladeZstd.NeedsConversion(context.Background(), nil, ocispecs.Descriptor{MediaType: mt})
		if err != nil || got != want {
			t.Errorf("zstd NeedsConversion(%s) = %v, %v; want %v", mt, got, err, want)
		}
	}
}

func TestZstdRoundTrip(t *testing.T) {
	data := bytes.Repeat([]byte{1, 2, 3, 4}, 1<<16)
	out := compressWith(t, context.Background(), ladeZstd, nil, data)
	if !bytes.HasPrefix(out, []byte{0x28, 0xB5, 0x2F, 0xFD}) {
		t.Fatalf("not a zstd frame: % x", out[:4])
	}
}

// TestLadeCompressorFail: a layer whose diff failed ends its status
// failed and records no blob, even though its compressor was flushed.
func TestLadeCompressorFail(t *testing.T) {
	tr := &tracker{}
	ctx := withTracker(context.Background(), tr)
	fn, _ := ladeGzip.Compress(ctx, bkcompression.Config{Type: ladeGzip})
	var buf bytes.Buffer
	w, err := fn(&buf, ladeGzip.MediaType())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("partial layer")); err != nil {
		t.Fatal(err)
	}
	w.(interface{ fail(error) }).fail(nil)
	if err := w.Close(); err != nil {
		t.Fatalf("close after fail: %v", err)
	}
	sum := sha256.Sum256(buf.Bytes())
	if _, ok := tr.freshBlob(digest.NewDigestFromBytes(digest.SHA256, sum[:])); ok {
		t.Fatal("a failed layer was recorded as a fresh blob")
	}
	tr.mu.Lock()
	n := len(tr.fresh)
	tr.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d fresh blobs recorded, want none", n)
	}
}
