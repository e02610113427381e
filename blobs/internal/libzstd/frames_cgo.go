//go:build cgo && (native || libzstd)

package libzstd

/*
#include <zstd.h>
*/
import "C"

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"unsafe"
)

// FrameEncoder compresses many independent zstd frames with one reused
// ZSTD_CCtx, without content checksums: zstd:chunked writes a frame per
// file and per chunk, and libzstd sizes its tables to each frame, so a
// short frame costs little setup. It is not safe for concurrent use.
type FrameEncoder struct {
	cc  *C.ZSTD_CCtx
	out []byte // the streaming frame's output buffer
}

// NewFrameEncoder returns a FrameEncoder at level (1 to 22). Close frees it.
func NewFrameEncoder(level int) (*FrameEncoder, error) {
	if lo, hi := LevelRange(); level < 1 || level > hi {
		return nil, fmt.Errorf("libzstd: level %d out of range: use 1 to %d (negative levels down to %d are not offered)", level, hi, lo)
	}
	cc := C.ZSTD_createCCtx()
	if cc == nil {
		return nil, errors.New("libzstd: cannot allocate an encoder (out of memory)")
	}
	for _, p := range []struct {
		param C.ZSTD_cParameter
		value C.int
	}{{C.ZSTD_c_compressionLevel, C.int(level)}, {C.ZSTD_c_checksumFlag, 0}, {C.ZSTD_c_nbWorkers, 0}} {
		if err := check(C.ZSTD_CCtx_setParameter(cc, p.param, p.value)); err != nil {
			C.ZSTD_freeCCtx(cc)
			return nil, fmt.Errorf("libzstd: set parameter %d to %d: %w", p.param, p.value, err)
		}
	}
	e := &FrameEncoder{cc: cc}
	// A writer that fails and is dropped without Close must not leak
	// the context, which lives in C memory.
	runtime.SetFinalizer(e, (*FrameEncoder).Close)
	return e, nil
}

// EncodeAll appends src to dst as one frame, which records its content
// size, and returns the extended buffer.
func (e *FrameEncoder) EncodeAll(src, dst []byte) ([]byte, error) {
	if e.cc == nil {
		return dst, errors.New("libzstd: frame encoder used after Close")
	}
	bound := int(C.ZSTD_compressBound(C.size_t(len(src))))
	if cap(dst)-len(dst) < bound {
		dst = append(make([]byte, 0, len(dst)+bound), dst...)
	}
	out := dst[len(dst):cap(dst)]
	var in unsafe.Pointer
	if len(src) > 0 {
		in = unsafe.Pointer(&src[0])
	}
	n := C.ZSTD_compress2(e.cc, unsafe.Pointer(&out[0]), C.size_t(len(out)), in, C.size_t(len(src)))
	if err := check(n); err != nil {
		return dst, fmt.Errorf("libzstd: compress: %w", err)
	}
	return dst[:len(dst)+int(n)], nil
}

// Stream starts a frame of unknown length written to w through the
// returned Writer; its Close ends the frame and leaves the encoder to the
// next frame. Its bytes differ from EncodeAll's for the same data (the
// length is unknown when the frame starts): for reproducible output a
// caller chooses between the two by the frame's length only.
func (e *FrameEncoder) Stream(w io.Writer) (*Writer, error) {
	if e.cc == nil {
		return nil, errors.New("libzstd: frame encoder used after Close")
	}
	if err := check(C.ZSTD_CCtx_reset(e.cc, C.ZSTD_reset_session_only)); err != nil {
		return nil, fmt.Errorf("libzstd: reset: %w", err)
	}
	if e.out == nil {
		e.out = make([]byte, int(C.ZSTD_CStreamOutSize()))
	}
	return &Writer{w: w, cc: e.cc, out: e.out, owner: e}, nil
}

// Close frees the encoder.
func (e *FrameEncoder) Close() {
	if e.cc != nil {
		C.ZSTD_freeCCtx(e.cc)
		e.cc = nil
	}
}
