package buildkit

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"runtime"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/lade-build/lade/blobs"
	"github.com/lade-build/lade/exporter"
	"github.com/lade-build/lade/exporter/archive"
	bkcompression "github.com/moby/buildkit/util/compression"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// compressionType runs lade's compressor inside BuildKit's blob pipeline:
// BuildKit's differ (the overlay upperdir fast path included) streams each
// new layer's tar through the writer Compress returns, hashes the diffID and
// commits the blob to the worker's content store, linked to the cache ref.
// Everything but Compress behaves like BuildKit's type of the same media
// type, so BuildKit's cache, compression variants and GC see an ordinary
// gzip (or zstd) blob.
type compressionType struct {
	lade blobs.Type
	base bkcompression.Type
}

var (
	// ladeGzip is lade's parallel, deterministic gzip.
	ladeGzip bkcompression.Type = compressionType{lade: blobs.Gzip, base: bkcompression.Gzip}
	// ladeZstd is klauspost zstd with concurrent blocks.
	ladeZstd bkcompression.Type = compressionType{lade: blobs.Zstd, base: bkcompression.Zstd}
	// ladeZstdChunked is lade's zstd:chunked: a zstd blob to BuildKit, but
	// only zstd:chunked blobs satisfy it (see NeedsConversion).
	ladeZstdChunked bkcompression.Type = compressionType{lade: blobs.ZstdChunked, base: bkcompression.Zstd}
)

// bkCompression returns the BuildKit compression type for a lade type:
// gzip and zstd run lade's compressors, gzip-compat is BuildKit's own gzip
// (the same bytes as stock BuildKit) and uncompressed is BuildKit's.
func bkCompression(t blobs.Type) (bkcompression.Type, error) {
	switch t {
	case blobs.Gzip, "":
		return ladeGzip, nil
	case blobs.Zstd:
		return ladeZstd, nil
	case blobs.ZstdChunked:
		return ladeZstdChunked, nil
	case blobs.GzipCompat:
		return bkcompression.Gzip, nil
	case blobs.Uncompressed:
		return bkcompression.Uncompressed, nil
	}
	return nil, fmt.Errorf("unknown compression %q", t)
}

// Compress implements bkcompression.Type: the writer compresses with lade and
// reports the layer's progress to the export that asked for it. When that
// export streams an OCI tar, the finalizer (which BuildKit calls once the
// blob is committed to the content store) hands the sealed blob to it.
func (t compressionType) Compress(ctx context.Context, comp bkcompression.Config) (bkcompression.Compressor, bkcompression.Finalizer) {
	c := blobs.Compression{Type: t.lade, Level: comp.Level}
	tr := trackerFrom(ctx)
	var mu sync.Mutex
	var last *layerWriter
	compressor := func(dest io.Writer, _ string) (io.WriteCloser, error) {
		hw, ok := dest.(blobSink)
		if !ok {
			hw = &hashWriter{w: dest, h: sha256.New()}
		}
		lw := &layerWriter{hw: hw}
		var out io.Writer = hw
		if tr.streaming() { // the OCI tar checks the blob it reads back against its CRC
			lw.crc = archive.NewCRCWriter(hw)
			out = lw.crc
		}
		zw, err := lw.withSoci(c, tr).NewWriter(out, runtime.GOMAXPROCS(0))
		if err != nil {
			return nil, err
		}
		lw.zw, lw.task = zw, tr.start(ctx, c)
		mu.Lock()
		last = lw
		mu.Unlock()
		return lw, nil
	}
	if !tr.streaming() {
		return compressor, nil
	}
	return compressor, func(context.Context, content.Store) (map[string]string, error) {
		mu.Lock()
		lw := last
		mu.Unlock()
		if lw != nil && lw.sealed != "" && lw.crc != nil {
			tr.seal(ocispecs.Descriptor{MediaType: t.MediaType(), Digest: lw.sealed, Size: lw.hw.written()}, lw.n, lw.crc.Sum32())
		}
		return nil, nil
	}
}

// Decompress implements bkcompression.Type.
func (t compressionType) Decompress(ctx context.Context, cs content.Store, desc ocispecs.Descriptor) (io.ReadCloser, error) {
	return t.base.Decompress(ctx, cs, desc)
}

// NeedsConversion implements bkcompression.Type. For zstd:chunked, a zstd
// blob without a zstd:chunked footer (plain zstd) needs conversion, so
// BuildKit's variant lookup never hands a plain zstd blob out for it.
func (t compressionType) NeedsConversion(ctx context.Context, cs content.Store, desc ocispecs.Descriptor) (bool, error) {
	needs, err := t.base.NeedsConversion(ctx, cs, desc)
	if err != nil || needs || t.lade != blobs.ZstdChunked || desc.Annotations[blobs.AnnotationZstdChunkedTOC] != "" {
		return needs, err
	}
	a, err := zstdChunkedAnnotations(ctx, cs, desc)
	return a == nil, err
}

// NeedsComputeDiffBySelf implements bkcompression.Type: never. Every differ
// BuildKit may pick for a lade type takes its compressor (BuildKit's
// overlayfs differ, containerd's walking differ, lade's Differ), and false
// sends the layers BuildKit's overlayfs differ does not take to the
// worker's differ (lade's in lade-buildkitd) instead of BuildKit's own
// walking differ.
func (t compressionType) NeedsComputeDiffBySelf(bkcompression.Config) bool { return false }

// OnlySupportOCITypes implements bkcompression.Type.
func (t compressionType) OnlySupportOCITypes() bool { return t.base.OnlySupportOCITypes() }

// MediaType implements bkcompression.Type.
func (t compressionType) MediaType() string { return t.base.MediaType() }

// String implements bkcompression.Type. It is the base type's name, which
// BuildKit uses to label compression variants of a blob.
func (t compressionType) String() string { return t.base.String() }

// blobSink is where a compressor writes a blob: it knows the digest and
// size of what it was given. A compressor given a blobSink (lade's Differ
// passes its content writer) does not hash the blob a second time.
type blobSink interface {
	io.Writer
	// blobDigest returns the digest of everything written so far.
	blobDigest() (digest.Digest, error)
	// written returns the number of bytes written so far.
	written() int64
}

// hashWriter is the blobSink of a plain writer: it hashes and counts what
// it writes to w.
type hashWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (h *hashWriter) blobDigest() (digest.Digest, error) {
	return digest.NewDigestFromBytes(digest.SHA256, h.h.Sum(nil)), nil
}

func (h *hashWriter) written() int64 { return h.n }

func (h *hashWriter) Write(p []byte) (int, error) {
	n, err := h.w.Write(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	return n, err
}

// layerWriter is the compressing writer of one layer. Close flushes the
// compressor and records the blob digest it produced.
type layerWriter struct {
	zw     io.WriteCloser
	hw     blobSink
	task   *layerTask
	n      int64 // uncompressed bytes written
	closed bool
	// crc takes the blob's CRC-32C when the export streams an OCI tar.
	crc *archive.CRCWriter
	// sealed is the blob's digest once Close succeeded.
	sealed digest.Digest
	// ztoc is the layer's zTOC when the export asked for soci (see
	// withSoci), handed to the exporter once the blob is sealed.
	ztoc     []byte
	ztocSpan int64
}

// withSoci returns c building the layer's zTOC in the compression pass when
// the export asked for soci=true and c is lade's gzip: the exporter then
// takes it (exporter.RememberZtoc) instead of reading the blob again.
func (l *layerWriter) withSoci(c blobs.Compression, tr *tracker) blobs.Compression {
	span := tr.sociSpan()
	if span == 0 || c.Type != blobs.Gzip {
		return c
	}
	l.ztocSpan = span
	c.Soci = &blobs.Soci{SpanSize: span, MinLayerSize: -1, Put: func(_ ocispecs.Descriptor, data []byte) error {
		l.ztoc = data
		return nil
	}}
	return c
}

func (l *layerWriter) Write(p []byte) (int, error) {
	n, err := l.zw.Write(p)
	l.n += int64(n)
	l.task.add(int64(n))
	return n, err
}

// fail closes the compressor of a layer whose diff failed: its slots and
// goroutines are released and its progress status ends with cause, not as
// a finished blob.
func (l *layerWriter) fail(cause error) {
	if l.closed {
		return
	}
	l.closed = true
	_ = l.zw.Close()
	if cause == nil {
		cause = errors.New("layer diff abandoned")
	}
	l.task.done("", l.hw.written(), cause)
}

func (l *layerWriter) Close() error {
	if l.closed {
		return nil
	}
	l.closed = true
	err := l.zw.Close()
	dgst, derr := l.hw.blobDigest()
	err = errors.Join(err, derr)
	l.task.done(dgst, l.hw.written(), err)
	if err == nil {
		l.sealed = dgst
		if l.ztoc != nil {
			exporter.RememberZtoc(dgst, l.ztocSpan, l.ztoc)
		}
	}
	return err
}
