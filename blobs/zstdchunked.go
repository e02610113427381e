package blobs

import (
	"io"

	"github.com/lade-build/lade/blobs/internal/zstdchunked"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ZstdChunkedAnnotationKeys are the layer annotations of a zstd:chunked
// blob (containers/storage's names): the TOC's checksum and position and
// the tar-split's position. A layer converted to another compression
// loses them.
var ZstdChunkedAnnotationKeys = zstdchunked.AnnotationKeys

// AnnotationZstdChunkedTOC is the annotation holding the digest of a
// zstd:chunked layer's TOC; its presence makes a zstd layer zstd:chunked.
const AnnotationZstdChunkedTOC = zstdchunked.ManifestChecksumKey

// newZstdChunkedWriter returns the zstd:chunked writer: one pass over the
// tar, frames compressed on the caller's goroutine with the encoder
// ZstdChunkedCodec chooses; its annotations reach the layer descriptor
// through Annotator.
func newZstdChunkedWriter(w io.Writer, level int) (io.WriteCloser, error) {
	codec, err := ZstdChunkedCodec()
	if err != nil {
		return nil, err
	}
	return zstdchunked.NewWriter(w, level, codec != "")
}

// TypeOfDescriptor returns the compression of a layer descriptor: that of
// its media type, but ZstdChunked for a zstd layer carrying a zstd:chunked
// TOC annotation.
func TypeOfDescriptor(d ocispec.Descriptor) (Type, error) {
	t, err := TypeOfMediaType(d.MediaType)
	if err == nil && t == Zstd && d.Annotations[AnnotationZstdChunkedTOC] != "" {
		return ZstdChunked, nil
	}
	return t, err
}

// ZstdChunkedAnnotations returns the zstd:chunked annotations of the blob
// of size bytes r reads, recovered from its footer and TOC; nil when it is
// no zstd:chunked blob. Pipelines that keep only some annotations of a
// blob (BuildKit's cache) use it to give them back.
func ZstdChunkedAnnotations(r io.ReaderAt, size int64) (map[string]string, error) {
	return zstdchunked.ReadAnnotations(r, size)
}
