//go:build !cgo || !(native || libzstd)

package libzstd

import (
	"errors"
	"io"
)

// Available reports whether this build has libzstd: not without cgo and
// the libzstd build tag.
const Available = false

// errNoCgo is what every use of libzstd returns in a build without cgo.
var errNoCgo = errors.New("libzstd: this binary was built without it: rebuild with cgo, libzstd-dev and `go build -tags native`, or use the pure-Go zstd encoder")

// Version returns "" in a build without cgo.
func Version() string { return "" }

// LevelRange returns zeros in a build without cgo.
func LevelRange() (lo, hi int) { return 0, 0 }

// Writer is unavailable without cgo.
type Writer struct{}

// NewWriter fails in a build without cgo.
func NewWriter(io.Writer, int) (*Writer, error) { return nil, errNoCgo }

// Write fails in a build without cgo.
func (*Writer) Write([]byte) (int, error) { return 0, errNoCgo }

// Close fails in a build without cgo.
func (*Writer) Close() error { return errNoCgo }

// FrameEncoder is unavailable without cgo.
type FrameEncoder struct{}

// NewFrameEncoder fails in a build without cgo.
func NewFrameEncoder(int) (*FrameEncoder, error) { return nil, errNoCgo }

// EncodeAll fails in a build without cgo.
func (*FrameEncoder) EncodeAll(_, dst []byte) ([]byte, error) { return dst, errNoCgo }

// Stream fails in a build without cgo.
func (*FrameEncoder) Stream(io.Writer) (*Writer, error) { return nil, errNoCgo }

// Close does nothing in a build without cgo.
func (*FrameEncoder) Close() {}
