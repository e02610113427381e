//go:build !cgo || !native

package libdeflate

import "errors"

// Available reports whether this build has libdeflate: not without cgo
// and the native build tag.
const Available = false

// MaxLevel is libdeflate's highest level.
const MaxLevel = 12

var errNoCgo = errors.New("libdeflate: this binary was built without it: rebuild with cgo, libdeflate-dev and `go build -tags native`, or use the pure-Go gzip")

// Version returns "" in a build without libdeflate.
func Version() string { return "" }

// Compressor is unavailable without libdeflate.
type Compressor struct{}

// NewCompressor fails in a build without libdeflate.
func NewCompressor(int) (*Compressor, error) { return nil, errNoCgo }

// GzipBound returns 0 in a build without libdeflate.
func (*Compressor) GzipBound(int) int { return 0 }

// Gzip fails in a build without libdeflate.
func (*Compressor) Gzip(dst, _ []byte) ([]byte, error) { return dst, errNoCgo }

// Close does nothing in a build without libdeflate.
func (*Compressor) Close() {}
