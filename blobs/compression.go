package blobs

import (
	"fmt"
	"io"
	"slices"
	"strings"

	stdgzip "compress/gzip"

	"github.com/lade-build/lade/blobs/internal/pargzip"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Type is a layer compression algorithm.
type Type string

// The compression types lade writes.
const (
	Uncompressed Type = "uncompressed"
	// Gzip is lade's default: parallel gzip in fixed 1 MiB blocks, so the
	// bytes are the same for any number of cores or workers.
	Gzip Type = "gzip"
	// GzipCompat is Go's single-threaded compress/gzip, byte-identical to
	// stock BuildKit's gzip at the same level. Its media type is gzip's.
	GzipCompat Type = "gzip-compat"
	// Zstd is klauspost zstd.
	Zstd Type = "zstd"
	// ZstdChunked is containers/storage's zstd:chunked: a zstd stream whose
	// files are frames of their own, indexed by a table of contents, for
	// partial pulls (see zstdchunked.go). Its media type is zstd's.
	ZstdChunked Type = "zstd:chunked"
)

// Types lists the accepted compression types.
var Types = []Type{Uncompressed, Gzip, GzipCompat, Zstd, ZstdChunked}

// ParseType parses a compression name, accepting "none" for uncompressed.
func ParseType(s string) (Type, error) {
	t := Type(strings.ToLower(strings.TrimSpace(s)))
	if t == "none" {
		t = Uncompressed
	}
	if slices.Contains(Types, t) {
		return t, nil
	}
	return "", fmt.Errorf("unknown compression %q: use one of uncompressed, gzip, gzip-compat, zstd, zstd:chunked", s)
}

// Compression is a compression type and level. The zero Level means the
// type's default.
type Compression struct {
	Type  Type
	Level *int
	// Soci, with Type Gzip, builds a zTOC per layer (see Soci).
	Soci *Soci
}

// String renders the compression as "type" or "type:level".
func (c Compression) String() string {
	if c.Level == nil {
		return string(c.Type)
	}
	return fmt.Sprintf("%s:%d", c.Type, *c.Level)
}

// DefaultCompression is lade's default: parallel gzip at its default level.
var DefaultCompression = Compression{Type: Gzip}

// LevelRange returns the accepted levels of t and its default.
func (t Type) LevelRange() (min, max, def int) {
	switch t {
	case Gzip, GzipCompat:
		return 0, 9, 6
	case Zstd, ZstdChunked:
		// zstd levels as in the zstd CLI; klauspost maps them onto its four
		// encoder speeds (1, 2-5, 6-9, 10+).
		return 1, 22, 3
	default:
		return 0, 0, 0
	}
}

// EffectiveLevel returns the level used: Level, or the type's default.
func (c Compression) EffectiveLevel() int {
	if c.Level != nil {
		return *c.Level
	}
	_, _, def := c.Type.LevelRange()
	return def
}

// Validate checks the type and the level against the type's range.
func (c Compression) Validate() error {
	if _, err := ParseType(string(c.Type)); err != nil {
		return err
	}
	if c.Level == nil {
		return nil
	}
	if c.Type == Uncompressed {
		return fmt.Errorf("compression level %d given for uncompressed layers: remove the level or choose gzip or zstd", *c.Level)
	}
	lo, hi, _ := c.Type.LevelRange()
	if *c.Level < lo || *c.Level > hi {
		return fmt.Errorf("compression level %d out of range for %s: use %d to %d", *c.Level, c.Type, lo, hi)
	}
	return nil
}

// MediaType returns the OCI layer media type for c, or the Docker one when
// docker is true. zstd's Docker media type is the one Docker 23 and
// BuildKit use (application/vnd.docker.image.rootfs.diff.tar.zstd).
func (c Compression) MediaType(docker bool) (string, error) {
	switch c.Type {
	case Uncompressed:
		if docker {
			return MediaTypeDockerLayer, nil
		}
		return ocispec.MediaTypeImageLayer, nil
	case Gzip, GzipCompat:
		if docker {
			return MediaTypeDockerLayerGzip, nil
		}
		return ocispec.MediaTypeImageLayerGzip, nil
	case Zstd, ZstdChunked:
		if docker {
			return MediaTypeDockerLayerZstd, nil
		}
		return ocispec.MediaTypeImageLayerZstd, nil
	}
	return "", fmt.Errorf("unknown compression %q", c.Type)
}

// Docker media types for layers.
const (
	MediaTypeDockerLayer     = "application/vnd.docker.image.rootfs.diff.tar"
	MediaTypeDockerLayerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerLayerZstd = "application/vnd.docker.image.rootfs.diff.tar.zstd"
)

// NewWriter returns a WriteCloser compressing into w with c. Until it is
// closed, the writer counts as one layer in flight (see codec.go): workers
// bounds the goroutines one zstd stream may use, and a zstd stream uses a
// second one only while fewer layers than cores are in flight. gzip
// streams share the process-wide pool of pargzip (GOMAXPROCS workers, a
// fixed budget of 1 MiB blocks), whose bytes are pgzip's at 1 MiB blocks.
// The bytes written never depend on workers, the pool or the layers in
// flight. Close flushes but does not close w; callers must call it, also
// on errors.
func (c Compression) NewWriter(w io.Writer, workers int) (io.WriteCloser, error) {
	zw, err := c.newWriter(w, max(workers, 1))
	if err != nil {
		return nil, err
	}
	return track(zw), nil
}

func (c Compression) newWriter(w io.Writer, workers int) (io.WriteCloser, error) {
	level := c.EffectiveLevel()
	switch c.Type {
	case Uncompressed:
		return nopCloser{w}, nil
	case GzipCompat:
		return stdgzip.NewWriterLevel(w, level)
	case Gzip:
		if c.Soci != nil {
			return newSociWriter(w, level, *c.Soci)
		}
		if codec, err := GzipCodec(level); err != nil || codec != "" {
			if err != nil {
				return nil, err
			}
			return newNativeGzipWriter(w, level, workers)
		}
		return pargzip.Default().NewWriter(w, level)
	case Zstd:
		return newZstdWriter(w, level, workers)
	case ZstdChunked:
		return newZstdChunkedWriter(w, level)
	}
	return nil, fmt.Errorf("unknown compression %q", c.Type)
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
