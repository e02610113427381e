//go:build !cgo

package libzstd

import (
	"errors"
	"io"
)

// Available reports whether this build has libzstd: not without cgo.
const Available = false

// errNoCgo is what every use of libzstd returns in a build without cgo.
var errNoCgo = errors.New("libzstd: this binary was built with CGO_ENABLED=0: rebuild with cgo and libzstd-dev, or use the pure-Go zstd encoder")

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
