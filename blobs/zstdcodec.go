package blobs

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/lade-build/lade/blobs/internal/libzstd"
)

// ZstdCodecEnv names the environment variable that chooses lade's zstd
// encoder: "go" (klauspost's pure-Go encoder, the default: the bytes
// stock BuildKit writes) or "libzstd" (the system's libzstd through cgo:
// about a fifth less CPU for slightly smaller, different bytes; only in
// binaries built with cgo, libzstd-dev and -tags libzstd).
const ZstdCodecEnv = "LADE_ZSTD"

// ZstdCodec returns the zstd encoder the environment chooses: "" for
// klauspost's, or libzstd's name and version ("libzstd-1.5.4"). Blob
// cache keys carry it (Key.Codec), so that a cache never hands out blobs
// of one encoder for another's. It fails on an unknown value, or on
// "libzstd" in a binary built without it.
func ZstdCodec() (string, error) {
	switch v := strings.ToLower(strings.TrimSpace(os.Getenv(ZstdCodecEnv))); v {
	case "", "go", "klauspost":
		return "", nil
	case "libzstd", "native":
		if !libzstd.Available {
			return "", fmt.Errorf("%s=%s: this binary was built without libzstd (it needs cgo and -tags libzstd): unset %s or rebuild with go build -tags libzstd", ZstdCodecEnv, v, ZstdCodecEnv)
		}
		return libzstd.Version(), nil
	default:
		return "", fmt.Errorf("%s=%q: unknown zstd encoder: use go or libzstd", ZstdCodecEnv, v)
	}
}

// codec returns the encoder name a blob of c is keyed with: "" but for
// zstd with libzstd.
func (c Compression) codec() (string, error) {
	if c.Type != Zstd {
		return "", nil
	}
	return ZstdCodec()
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
