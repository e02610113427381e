//go:build cgo && (native || libzstd)

package libzstd

/*
#cgo LDFLAGS: -lzstd
#include <stdlib.h>
#include <zstd.h>

// lade_compress runs one ZSTD_compressStream2 step over in[*inPos:inLen]
// into out[0:outCap], updating *inPos and *outPos; it returns what
// ZSTD_compressStream2 returns.
static size_t lade_compress(ZSTD_CCtx *c, const void *in, size_t inLen, size_t *inPos,
		void *out, size_t outCap, size_t *outPos, int end) {
	ZSTD_inBuffer ib = { in, inLen, *inPos };
	ZSTD_outBuffer ob = { out, outCap, 0 };
	size_t r = ZSTD_compressStream2(c, &ob, &ib, end ? ZSTD_e_end : ZSTD_e_continue);
	*inPos = ib.pos;
	*outPos = ob.pos;
	return r;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"io"
	"unsafe"
)

// Available reports whether this build has libzstd.
const Available = true

// Version returns the version of the libzstd the process runs with, as
// "libzstd-1.5.4".
func Version() string {
	return "libzstd-" + C.GoString(C.ZSTD_versionString())
}

// LevelRange returns the compression levels libzstd accepts.
func LevelRange() (lo, hi int) {
	return int(C.ZSTD_minCLevel()), int(C.ZSTD_maxCLevel())
}

// Writer compresses into an io.Writer as one zstd frame with a content
// checksum. It is not safe for concurrent use.
type Writer struct {
	w     io.Writer
	cc    *C.ZSTD_CCtx
	out   []byte
	err   error
	owner *FrameEncoder // cc is owner's: Close leaves it alive (and owner reachable)
}

// NewWriter returns a Writer compressing into w at level (1 to 22).
// Close ends the frame and frees the encoder; it does not close w.
func NewWriter(w io.Writer, level int) (*Writer, error) {
	if lo, hi := LevelRange(); level < 1 || level > hi {
		return nil, fmt.Errorf("libzstd: level %d out of range: use 1 to %d (negative levels down to %d are not offered)", level, hi, lo)
	}
	cc := C.ZSTD_createCCtx()
	if cc == nil {
		return nil, errors.New("libzstd: cannot allocate an encoder (out of memory)")
	}
	z := &Writer{w: w, cc: cc, out: make([]byte, int(C.ZSTD_CStreamOutSize()))}
	for _, p := range []struct {
		param C.ZSTD_cParameter
		value C.int
	}{{C.ZSTD_c_compressionLevel, C.int(level)}, {C.ZSTD_c_checksumFlag, 1}, {C.ZSTD_c_nbWorkers, 0}} {
		if err := check(C.ZSTD_CCtx_setParameter(cc, p.param, p.value)); err != nil {
			C.ZSTD_freeCCtx(cc)
			return nil, fmt.Errorf("libzstd: set parameter %d to %d: %w", p.param, p.value, err)
		}
	}
	return z, nil
}

// Write implements io.Writer.
func (z *Writer) Write(p []byte) (int, error) {
	if z.err != nil {
		return 0, z.err
	}
	if z.cc == nil {
		return 0, errors.New("libzstd: write after Close")
	}
	if len(p) == 0 {
		return 0, nil
	}
	var inPos C.size_t
	for inPos < C.size_t(len(p)) {
		if _, err := z.step(p, &inPos, false); err != nil {
			return int(inPos), err
		}
	}
	return len(p), nil
}

// step runs one compression step and writes what it produced.
func (z *Writer) step(p []byte, inPos *C.size_t, end bool) (C.size_t, error) {
	var in unsafe.Pointer
	if len(p) > 0 {
		in = unsafe.Pointer(&p[0])
	}
	var outPos C.size_t
	e := C.int(0)
	if end {
		e = 1
	}
	r := C.lade_compress(z.cc, in, C.size_t(len(p)), inPos, unsafe.Pointer(&z.out[0]), C.size_t(len(z.out)), &outPos, e)
	if err := check(r); err != nil {
		z.err = fmt.Errorf("libzstd: compress: %w", err)
		return 0, z.err
	}
	if outPos > 0 {
		if _, err := z.w.Write(z.out[:outPos]); err != nil {
			z.err = err
			return 0, err
		}
	}
	return r, nil
}

// Close ends the frame, writes it out and frees the encoder (unless it
// belongs to a FrameEncoder).
func (z *Writer) Close() error {
	if z.cc == nil {
		return z.err
	}
	defer func() {
		if z.owner == nil {
			C.ZSTD_freeCCtx(z.cc)
		}
		z.cc = nil
	}()
	for z.err == nil {
		var inPos C.size_t
		left, err := z.step(nil, &inPos, true)
		if err != nil {
			return err
		}
		if left == 0 {
			break
		}
	}
	return z.err
}

// check turns a libzstd result into an error.
func check(r C.size_t) error {
	if C.ZSTD_isError(r) != 0 {
		return errors.New(C.GoString(C.ZSTD_getErrorName(r)))
	}
	return nil
}
