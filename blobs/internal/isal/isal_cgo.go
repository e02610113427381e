//go:build cgo && native

package isal

/*
#cgo LDFLAGS: -lisal
#include <stdlib.h>
#include <string.h>
#include <isa-l.h>

static const unsigned lade_isal_level_buf[4] = {
	ISAL_DEF_LVL0_DEFAULT, ISAL_DEF_LVL1_DEFAULT, ISAL_DEF_LVL2_DEFAULT, ISAL_DEF_LVL3_DEFAULT,
};

// lade_isal_new allocates a raw-deflate stream at level with its level buffer.
static struct isal_zstream *lade_isal_new(int level) {
	struct isal_zstream *s = calloc(1, sizeof(*s));
	if (s == NULL) return NULL;
	isal_deflate_init(s);
	s->level_buf_size = lade_isal_level_buf[level];
	if (s->level_buf_size > 0) {
		s->level_buf = malloc(s->level_buf_size);
		if (s->level_buf == NULL) { free(s); return NULL; }
	}
	return s;
}

static void lade_isal_free(struct isal_zstream *s) {
	free(s->level_buf);
	free(s);
}

// lade_isal_block deflates in[0:inLen] into out[0:outCap] primed with
// dict[0:dictLen], sync-flushed or, when final, closed. It stores the
// output length in *outLen and returns an ISA-L status, or 1 when out was
// too small. No pointer to the caller's buffers is kept.
static int lade_isal_block(struct isal_zstream *s, int level, uint8_t *dict, uint32_t dictLen,
		uint8_t *in, uint32_t inLen, uint8_t *out, uint32_t outCap, int final, uint32_t *outLen) {
	isal_deflate_reset(s);
	s->level = level;
	s->gzip_flag = IGZIP_DEFLATE;
	s->end_of_stream = final ? 1 : 0;
	s->flush = final ? NO_FLUSH : SYNC_FLUSH;
	int r = COMP_OK;
	if (dictLen > 0) r = isal_deflate_set_dict(s, dict, dictLen);
	if (r == COMP_OK) {
		s->next_in = in; s->avail_in = inLen;
		s->next_out = out; s->avail_out = outCap;
		r = isal_deflate(s);
		if (r == COMP_OK && (s->avail_in != 0 || s->avail_out == 0 ||
				(final && s->internal_state.state != ZSTATE_END))) r = 1;
	}
	*outLen = outCap - s->avail_out;
	s->next_in = NULL; s->next_out = NULL; s->avail_in = 0; s->avail_out = 0;
	return r;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
)

// Available reports whether this build has ISA-L.
const Available = true

// MaxLevel is ISA-L's highest deflate level (levels are 0 to MaxLevel).
const MaxLevel = int(C.ISAL_DEF_MAX_LEVEL)

// HistSize is the dictionary size ISA-L uses: deflate's 32 KiB window.
const HistSize = int(C.ISAL_DEF_HIST_SIZE)

// Version returns the version of ISA-L lade was built against, as
// "isal-2.30": libisal has no run-time version call, and Debian's package
// name carries the ABI (libisal2), so a new version means a rebuild.
func Version() string {
	return fmt.Sprintf("isal-%d.%d", C.ISAL_MAJOR_VERSION, C.ISAL_MINOR_VERSION)
}

// Encoder deflates blocks at one level. It is not safe for concurrent
// use; Close frees it.
type Encoder struct {
	s     *C.struct_isal_zstream
	level int
}

// NewEncoder returns an Encoder at level (0 to MaxLevel).
func NewEncoder(level int) (*Encoder, error) {
	if level < 0 || level > MaxLevel {
		return nil, fmt.Errorf("isal: level %d out of range: use 0 to %d", level, MaxLevel)
	}
	s := C.lade_isal_new(C.int(level))
	if s == nil {
		return nil, errors.New("isal: cannot allocate an encoder (out of memory)")
	}
	return &Encoder{s: s, level: level}, nil
}

// Bound returns the most bytes Block may append for n input bytes.
func Bound(n int) int { return n + n>>4 + 1024 }

// Block appends to dst the deflate of in primed with dict (at most
// HistSize bytes are used: its end), sync-flushed, or closed when final.
func (e *Encoder) Block(dst, dict, in []byte, final bool) ([]byte, error) {
	if e.s == nil {
		return dst, errors.New("isal: Block after Close")
	}
	if len(dict) > HistSize {
		dict = dict[len(dict)-HistSize:]
	}
	need := Bound(len(in))
	if cap(dst)-len(dst) < need {
		dst = append(make([]byte, 0, len(dst)+need), dst...)
	}
	out := dst[len(dst):cap(dst)]
	var n C.uint32_t
	fin := C.int(0)
	if final {
		fin = 1
	}
	r := C.lade_isal_block(e.s, C.int(e.level), ptr(dict), C.uint32_t(len(dict)),
		ptr(in), C.uint32_t(len(in)), ptr(out), C.uint32_t(len(out)), fin, &n)
	if r != 0 {
		return dst, fmt.Errorf("isal: deflate of a %d-byte block failed with status %d", len(in), int(r))
	}
	return dst[:len(dst)+int(n)], nil
}

// Close frees the encoder.
func (e *Encoder) Close() {
	if e.s != nil {
		C.lade_isal_free(e.s)
		e.s = nil
	}
}

// ptr returns the address of b's first byte, or nil for an empty b.
func ptr(b []byte) *C.uint8_t {
	if len(b) == 0 {
		return nil
	}
	return (*C.uint8_t)(unsafe.Pointer(&b[0]))
}
