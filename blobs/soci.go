package blobs

import (
	"fmt"
	"io"
	"strconv"

	"github.com/lade-build/lade/blobs/internal/pargzip"
	"github.com/lade-build/lade/soci"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Layer annotations of a gzip layer written with a zTOC (internal: they
// never reach a manifest; the exporter packages the zTOC as a SOCI index).
const (
	// AnnotationZtoc is the digest of the layer's zTOC blob.
	AnnotationZtoc = "lade.dev/soci.ztoc"
	// AnnotationZtocSpans is the zTOC's span count.
	AnnotationZtocSpans = "lade.dev/soci.spans"
	// AnnotationZtocSpanSize is the span size it was built with.
	AnnotationZtocSpanSize = "lade.dev/soci.span-size"
	// labelZtocRef keeps the zTOC alive as long as the layer blob.
	labelZtocRef = "containerd.io/gc.ref.content.soci.ztoc"
)

// MediaTypeZtoc is a zTOC blob's media type, as soci-snapshotter gives it.
const MediaTypeZtoc = "application/octet-stream"

// Soci asks lade's gzip (Compression.Type Gzip) to build each layer's
// zTOC in the pass that compresses it: the file table from the tar as it
// passes, a checkpoint where a gzip block starts at or past each span
// boundary (no decompression, no second read). Layers whose blob is at
// least MinLayerSize get their zTOC stored through Put and named in the
// layer annotations above.
type Soci struct {
	// SpanSize is soci-snapshotter's span size; 0 means 4 MiB.
	SpanSize int64
	// MinLayerSize is the smallest blob given a zTOC; 0 means 10 MiB,
	// negative means every layer.
	MinLayerSize int64
	// Put stores a zTOC blob under desc. It must be safe for concurrent use.
	Put func(desc ocispec.Descriptor, data []byte) error
}

func (s Soci) minLayerSize() int64 {
	switch {
	case s.MinLayerSize == 0:
		return soci.DefaultMinLayerSize
	case s.MinLayerSize < 0:
		return 0
	}
	return s.MinLayerSize
}

func (s Soci) spanSize() int64 {
	if s.SpanSize <= 0 {
		return soci.DefaultSpanSize
	}
	return s.SpanSize
}

// codec names lade's gzip with a zTOC in blob cache keys: a cached blob
// has the zTOC of its span size and minimum, and is pure-Go gzip's.
func (s Soci) codec() string {
	return fmt.Sprintf("soci:%d:%d", s.spanSize(), s.minLayerSize())
}

// sociWriter is lade's gzip with a zTOC builder tapping the tar, the gzip
// stream and the block boundaries. Its bytes are the plain gzip's.
type sociWriter struct {
	zw  *pargzip.Writer
	b   *soci.Builder
	tar io.Writer
	cfg Soci
	ann map[string]string
}

func newSociWriter(w io.Writer, level int, cfg Soci) (*sociWriter, error) {
	return newSociWriterOn(pargzip.Default(), w, level, cfg)
}

// newSociWriterOn is newSociWriter on pool p.
func newSociWriterOn(p *pargzip.Pool, w io.Writer, level int, cfg Soci) (*sociWriter, error) {
	if cfg.Put == nil {
		return nil, fmt.Errorf("soci: no place to store zTOCs (Soci.Put is nil)")
	}
	b := soci.NewBuilder(cfg.spanSize())
	zw, err := p.NewWriter(b.Compressed(w), level)
	if err != nil {
		return nil, err
	}
	zw.OnBlock(func(bd pargzip.Boundary) { b.Block(bd.Compressed, bd.Uncompressed, bd.Window) })
	return &sociWriter{zw: zw, b: b, tar: b.Tar(), cfg: cfg}, nil
}

// Write passes p to the table builder and the compressor.
func (s *sociWriter) Write(p []byte) (int, error) {
	_, _ = s.tar.Write(p) // the table keeps its error for Finish
	return s.zw.Write(p)
}

// Close finishes the gzip stream, then the zTOC, and stores it when the
// blob is large enough.
func (s *sociWriter) Close() error {
	if err := s.zw.Close(); err != nil {
		return err
	}
	z, err := s.b.Finish()
	if err != nil {
		return fmt.Errorf("soci: %w", err)
	}
	if z.CompressedSize < s.cfg.minLayerSize() {
		return nil
	}
	data := z.Marshal()
	desc := ocispec.Descriptor{MediaType: MediaTypeZtoc, Digest: digest.FromBytes(data), Size: int64(len(data))}
	if err := s.cfg.Put(desc, data); err != nil {
		return fmt.Errorf("soci: store zTOC: %w", err)
	}
	s.ann = map[string]string{
		AnnotationZtoc:         desc.Digest.String(),
		AnnotationZtocSpans:    strconv.Itoa(z.Spans),
		AnnotationZtocSpanSize: strconv.FormatInt(z.SpanSize, 10),
		labelZtocRef:           desc.Digest.String(),
	}
	return nil
}

// Annotations implements Annotator.
func (s *sociWriter) Annotations() map[string]string { return s.ann }
