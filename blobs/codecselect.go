package blobs

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/lade-build/lade/blobs/internal/isal"
	"github.com/lade-build/lade/blobs/internal/libdeflate"
	"github.com/lade-build/lade/blobs/internal/libzstd"
)

// Codec selection (issue #17). Binaries built with cgo and the build tag
// native (`go build -tags native`, needing libdeflate-dev, libisal-dev and
// libzstd-dev) carry native encoders. gzip uses them by default: levels
// 1-3 through ISA-L, levels 4-9 (the default 6 included) through
// libdeflate; CodecsEnv=go picks the pure-Go gzip at run time. zstd stays
// on klauspost's encoder unless ZstdCodecEnv=libzstd: klauspost's bytes
// are stock BuildKit's (the same digests), while libzstd saves about a
// tenth of the compress stage on the Go tree (less than the spread
// between runs), writes 58 % more bytes on seq-made text and is a little
// slower on incompressible data (docs/performance.md). zstd:chunked's
// per-file frames take libzstd by default where it is built in
// (ZstdChunkedCodec).
// Builds without the tag (CGO_ENABLED=0 among them) have only the pure-Go
// encoders. Every native encoder's bytes depend only
// on the input, the level and the library version, never on the number
// of cores; blob cache keys carry the encoder's name, version and level
// (Key.Codec), so a cache never hands out one encoder's blob for another's.

// CodecsEnv names the environment variable that chooses between the
// native gzip encoders ("native", the default where built in) and the
// pure-Go one ("go").
const CodecsEnv = "LADE_CODECS"

// ZstdCodecEnv names the environment variable that chooses lade's zstd
// encoder: "go" (klauspost's pure-Go encoder, the default: the bytes stock
// BuildKit writes) or "libzstd" (the system's libzstd through cgo: about a
// fifth less CPU on compressible data for slightly smaller, different
// bytes; only in binaries built with -tags native).
const ZstdCodecEnv = "LADE_ZSTD"

// NativeCodecs reports whether this binary was built with the native
// encoders (cgo and -tags native).
func NativeCodecs() bool {
	return isal.Available && libdeflate.Available && libzstd.Available
}

// nativeChosen reports whether the environment (CodecsEnv) picks the
// native encoders: by default exactly when they are built in.
func nativeChosen() (bool, error) {
	switch v := strings.ToLower(strings.TrimSpace(os.Getenv(CodecsEnv))); v {
	case "":
		return NativeCodecs(), nil
	case "go":
		return false, nil
	case "native":
		if !NativeCodecs() {
			return false, fmt.Errorf("%s=native: this binary was built without the native encoders (they need cgo, libdeflate-dev, libisal-dev, libzstd-dev and -tags native): unset %s or rebuild with go build -tags native", CodecsEnv, CodecsEnv)
		}
		return true, nil
	default:
		return false, fmt.Errorf("%s=%q: unknown choice of encoders: use native or go", CodecsEnv, v)
	}
}

// ZstdCodec returns the zstd encoder the environment chooses: "" for
// klauspost's, or libzstd's name and version ("libzstd-1.5.4"). It fails
// on an unknown value, or on a native encoder in a binary built without.
func ZstdCodec() (string, error) {
	switch v := strings.ToLower(strings.TrimSpace(os.Getenv(ZstdCodecEnv))); v {
	case "", "go", "klauspost":
		return "", nil
	case "libzstd", "native":
		if !libzstd.Available {
			return "", fmt.Errorf("%s=%s: this binary was built without libzstd (it needs cgo and -tags native): unset %s or rebuild with go build -tags native", ZstdCodecEnv, v, ZstdCodecEnv)
		}
		return libzstd.Version(), nil
	default:
		return "", fmt.Errorf("%s=%q: unknown zstd encoder: use go or libzstd", ZstdCodecEnv, v)
	}
}

// ZstdChunkedCodec returns the encoder of zstd:chunked frames: "" for
// klauspost's, or libzstd's name and version. Unlike plain zstd, it is
// libzstd by default where the native encoders are built in and chosen
// (CodecsEnv): zstd:chunked compresses each file and chunk as a frame of
// its own, and libzstd, which sizes its tables to each frame, takes about
// a fifth less CPU for 1.4% fewer bytes on the Go tree and the same CPU
// on incompressible data (docs/performance.md). ZstdCodecEnv=go or
// libzstd overrides the default.
func ZstdChunkedCodec() (string, error) {
	if strings.TrimSpace(os.Getenv(ZstdCodecEnv)) != "" {
		return ZstdCodec()
	}
	native, err := nativeChosen()
	if err != nil || !native {
		return "", err
	}
	return libzstd.Version(), nil
}

// GzipCodec returns the gzip encoder the environment chooses for the
// gzip type at level: "" for lade's pure-Go parallel gzip (pargzip), or
// the native encoder's name, version and own level, as
// "libdeflate-1.14/5" or "isal-2.30/1" (see gzipNative for the levels).
func GzipCodec(level int) (string, error) {
	native, err := nativeChosen()
	if err != nil || !native {
		return "", err
	}
	lib, nl := gzipNative(level)
	switch lib {
	case "isal":
		return fmt.Sprintf("%s/%d", isal.Version(), nl), nil
	case "libdeflate":
		return fmt.Sprintf("%s/%d", libdeflate.Version(), nl), nil
	}
	return "", nil
}

// codec returns the encoder name a blob of c is keyed with: "" for the
// pure-Go default encoders.
func (c Compression) codec() (string, error) {
	switch c.Type {
	case Zstd:
		return ZstdCodec()
	case ZstdChunked:
		return ZstdChunkedCodec()
	case Gzip:
		if c.Soci != nil {
			return c.Soci.codec(), nil
		}
		return GzipCodec(c.EffectiveLevel())
	}
	return "", nil
}

// newZstdEncoder returns the chosen single-threaded zstd encoder.
func newZstdEncoder(w io.Writer, level int) (io.WriteCloser, error) {
	codec, err := ZstdCodec()
	if err != nil {
		return nil, err
	}
	if codec != "" {
		return libzstd.NewWriter(w, level)
	}
	enc, err := zstd.NewWriter(w,
		zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)),
		zstd.WithEncoderConcurrency(1),
		zstd.WithZeroFrames(true),
	)
	if err != nil {
		return nil, fmt.Errorf("zstd encoder: %w", err)
	}
	return enc, nil
}
