package soci

import (
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"

	digest "github.com/opencontainers/go-digest"
)

const (
	// DefaultSpanSize is soci-snapshotter's default span size (4 MiB).
	DefaultSpanSize = 4 << 20
	// DefaultMinLayerSize is soci-snapshotter's default minimum layer size
	// (10 MiB): smaller layers get no zTOC.
	DefaultMinLayerSize = 10 << 20
	// BuildTool is the build tool identifier lade writes into zTOCs and
	// SOCI indexes.
	BuildTool = "lade"

	// gzipHeader is the size of a gzip header without optional fields, as
	// lade's gzip writes it: the deflate stream starts there.
	gzipHeader = 10
	// windowSize is deflate's window, as zinfo stores it per checkpoint.
	windowSize = 32 << 10
	// tailKeep bounds the compressed bytes kept after the last checkpoint
	// to drop a checkpoint at the very end of the stream.
	tailKeep = 64
)

// Builder builds the zTOC of one gzip layer in the pass that compresses it:
// the tar goes through Tar, the gzip stream through Compressed, and the
// compressor reports where its byte-aligned, self-contained blocks start
// through Block. A checkpoint is placed at the first block start at or past
// each span boundary, so nothing is decompressed. Tar and Block/Compressed
// may run on two goroutines; Finish runs after both are done.
type Builder struct {
	spanSize int64
	table    tarTable

	n        int64 // compressed bytes seen
	header   [gzipHeader]byte
	h        hash.Hash // sha256 of the current span's compressed bytes
	digests  []digest.Digest
	points   []checkpoint
	prev     []byte // hash state of the span before the last checkpoint
	tail     []byte // compressed bytes since the last checkpoint, up to tailKeep
	tailLost bool   // more than tailKeep bytes came after it
	err      error
}

// checkpoint is a place a reader can start inflating: the compressed
// offset (zinfo's in: of the byte after the one holding the block's first
// bit if bits is not 0), the number of the block's bits in the byte
// before in, the uncompressed offset, and the 32 KiB before it.
type checkpoint struct {
	in, out int64
	bits    uint8
	window  []byte
}

// spanStart is where the span starting at p starts in the blob: at in, or
// at the byte before it that holds its first bits.
func (p checkpoint) spanStart() int64 {
	if p.bits != 0 {
		return p.in - 1
	}
	return p.in
}

// NewBuilder returns a Builder placing checkpoints about spanSize bytes of
// uncompressed data apart (0 means DefaultSpanSize).
func NewBuilder(spanSize int64) *Builder {
	if spanSize <= 0 {
		spanSize = DefaultSpanSize
	}
	return &Builder{
		spanSize: spanSize,
		h:        sha256.New(),
		points:   []checkpoint{{in: gzipHeader, out: 0, window: make([]byte, windowSize)}},
	}
}

// Tar returns the writer the uncompressed tar goes through.
func (b *Builder) Tar() io.Writer { return &b.table }

// Compressed returns a writer that passes the gzip stream on to w and
// hashes its spans.
func (b *Builder) Compressed(w io.Writer) io.Writer { return &compressedTap{b: b, w: w} }

type compressedTap struct {
	b *Builder
	w io.Writer
}

func (c *compressedTap) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.b.see(p[:n])
	return n, err
}

// see hashes compressed bytes past the gzip header.
func (b *Builder) see(p []byte) {
	if b.n < gzipHeader {
		k := copy(b.header[b.n:], p)
		b.n += int64(k)
		p = p[k:]
	}
	b.n += int64(len(p))
	b.h.Write(p)
	if len(b.tail)+len(p) <= tailKeep {
		b.tail = append(b.tail, p...)
	} else {
		b.tailLost = true
	}
}

// Block reports that a block starts at compressed offset compressed and
// uncompressed offset uncompressed, byte-aligned, needing only window (the
// 32 KiB of uncompressed data before it) as history. Every compressed byte
// before it must have gone through Compressed, and none after it.
func (b *Builder) Block(compressed, uncompressed int64, window []byte) {
	if b.err != nil || uncompressed-b.points[len(b.points)-1].out < b.spanSize {
		return
	}
	if compressed != b.n || len(window) != windowSize {
		b.err = fmt.Errorf("zTOC: block at compressed offset %d reported after %d bytes, with a %d-byte window", compressed, b.n, len(window))
		return
	}
	state, err := b.h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		b.err = fmt.Errorf("zTOC: keep span hash: %w", err)
		return
	}
	b.digests = append(b.digests, digest.NewDigestFromBytes(digest.SHA256, b.h.Sum(nil)))
	b.prev = state
	b.h.Reset()
	b.tail, b.tailLost = b.tail[:0], false
	b.points = append(b.points, checkpoint{in: compressed, out: uncompressed, window: append([]byte(nil), window...)})
}

// Finish returns the zTOC once the tar and the gzip stream are complete.
func (b *Builder) Finish() (*ZTOC, error) {
	if b.err != nil {
		return nil, b.err
	}
	if b.n < gzipHeader || b.header[0] != 0x1f || b.header[1] != 0x8b || b.header[3] != 0 {
		return nil, errors.New("zTOC: the stream does not start with a plain 10-byte gzip header")
	}
	files, tarSize, err := b.table.finish()
	if err != nil {
		return nil, fmt.Errorf("zTOC: %w", err)
	}
	if err := b.dropFinalPoint(); err != nil {
		return nil, err
	}
	digests := append(b.digests, digest.NewDigestFromBytes(digest.SHA256, b.h.Sum(nil)))
	return &ZTOC{
		Files: files, SpanSize: b.spanSize, Spans: len(b.points),
		CompressedSize: b.n, UncompressedSize: tarSize,
		SpanDigests: digests, Checkpoints: zinfo(b.spanSize, b.points),
	}, nil
}

// dropFinalPoint removes a checkpoint at the very end of the data (a block
// boundary right before an empty final block), which would start an empty
// span, and folds its few bytes back into the span before it.
func (b *Builder) dropFinalPoint() error {
	last := b.points[len(b.points)-1]
	if len(b.points) == 1 || last.out < b.table.pos {
		return nil
	}
	if b.tailLost {
		return fmt.Errorf("zTOC: the gzip stream has more than %d bytes after its last data", tailKeep)
	}
	h := sha256.New()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(b.prev); err != nil {
		return fmt.Errorf("zTOC: restore span hash: %w", err)
	}
	h.Write(b.tail)
	b.h = h
	b.points = b.points[:len(b.points)-1]
	b.digests = b.digests[:len(b.digests)-1]
	return nil
}

// zinfo encodes checkpoints as soci-snapshotter's gzip zinfo (version 2):
// the checkpoint count (int32) and span size (int64), then per checkpoint
// the compressed offset and uncompressed offset (int64), the bits (one
// byte) and the 32 KiB window; little-endian.
func zinfo(spanSize int64, points []checkpoint) []byte {
	const per = 8 + 8 + 1 + windowSize
	out := make([]byte, 4+8, 4+8+per*len(points))
	binary.LittleEndian.PutUint32(out[0:], uint32(len(points)))
	binary.LittleEndian.PutUint64(out[4:], uint64(spanSize))
	for _, p := range points {
		out = binary.LittleEndian.AppendUint64(out, uint64(p.in))
		out = binary.LittleEndian.AppendUint64(out, uint64(p.out))
		out = append(out, p.bits)
		out = append(out, p.window...)
	}
	return out
}
