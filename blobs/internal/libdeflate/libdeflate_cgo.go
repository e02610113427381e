//go:build cgo && native

package libdeflate

/*
#cgo LDFLAGS: -ldeflate
#include <stdlib.h>
#include <libdeflate.h>
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
)

// Available reports whether this build has libdeflate.
const Available = true

// MaxLevel is libdeflate's highest level (levels are 0 to MaxLevel).
const MaxLevel = 12

// Version returns the version of libdeflate lade was built against, as
// "libdeflate-1.14" (libdeflate has no run-time version call; Debian's
// package name carries the ABI, libdeflate0).
func Version() string { return "libdeflate-" + C.LIBDEFLATE_VERSION_STRING }

// Compressor compresses buffers at one level. It is not safe for
// concurrent use; Close frees it.
type Compressor struct {
	c *C.struct_libdeflate_compressor
}

// NewCompressor returns a Compressor at level (0 to MaxLevel).
func NewCompressor(level int) (*Compressor, error) {
	if level < 0 || level > MaxLevel {
		return nil, fmt.Errorf("libdeflate: level %d out of range: use 0 to %d", level, MaxLevel)
	}
	c := C.libdeflate_alloc_compressor(C.int(level))
	if c == nil {
		return nil, errors.New("libdeflate: cannot allocate a compressor (out of memory)")
	}
	return &Compressor{c: c}, nil
}

// GzipBound returns the most bytes Gzip may append for n input bytes.
func (z *Compressor) GzipBound(n int) int {
	return int(C.libdeflate_gzip_compress_bound(z.c, C.size_t(n)))
}

// Gzip appends to dst in as one gzip member: libdeflate's header (no name,
// zero modification time, OS unknown), the deflate of in, its CRC-32 and
// size.
func (z *Compressor) Gzip(dst, in []byte) ([]byte, error) {
	if z.c == nil {
		return dst, errors.New("libdeflate: Gzip after Close")
	}
	need := z.GzipBound(len(in))
	if cap(dst)-len(dst) < need {
		dst = append(make([]byte, 0, len(dst)+need), dst...)
	}
	out := dst[len(dst):cap(dst)]
	var inP unsafe.Pointer
	if len(in) > 0 {
		inP = unsafe.Pointer(&in[0])
	}
	n := C.libdeflate_gzip_compress(z.c, inP, C.size_t(len(in)), unsafe.Pointer(&out[0]), C.size_t(len(out)))
	if n == 0 {
		return dst, fmt.Errorf("libdeflate: gzip of %d bytes did not fit its bound of %d bytes", len(in), len(out))
	}
	return dst[:len(dst)+int(n)], nil
}

// Close frees the compressor.
func (z *Compressor) Close() {
	if z.c != nil {
		C.libdeflate_free_compressor(z.c)
		z.c = nil
	}
}
