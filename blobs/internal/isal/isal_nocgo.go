//go:build !cgo || !native

package isal

import "errors"

// Available reports whether this build has ISA-L: not without cgo and the
// native build tag.
const Available = false

// MaxLevel is ISA-L's highest deflate level.
const MaxLevel = 3

// HistSize is the dictionary size ISA-L uses.
const HistSize = 32 << 10

var errNoCgo = errors.New("isal: this binary was built without ISA-L: rebuild with cgo, libisal-dev and `go build -tags native`, or use the pure-Go gzip")

// Version returns "" in a build without ISA-L.
func Version() string { return "" }

// Encoder is unavailable without ISA-L.
type Encoder struct{}

// NewEncoder fails in a build without ISA-L.
func NewEncoder(int) (*Encoder, error) { return nil, errNoCgo }

// Bound returns the most bytes Block may append for n input bytes.
func Bound(n int) int { return n + n>>4 + 1024 }

// Block fails in a build without ISA-L.
func (*Encoder) Block(dst, _, _ []byte, _ bool) ([]byte, error) { return dst, errNoCgo }

// Close does nothing in a build without ISA-L.
func (*Encoder) Close() {}
