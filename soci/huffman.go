package soci

import (
	"math/bits"
	"sync"
)

// maxCodeLen is deflate's longest Huffman code.
const maxCodeLen = 15

// huffman is a canonical Huffman code as one lookup table indexed by the
// next max bits of the stream (LSB first): each entry is symbol<<4 |
// code length, 0 where no code matches.
type huffman struct {
	t    []uint32
	max  uint
	mask uint64
}

// build makes the table for the code lengths of symbols 0..len(lengths)-1
// (RFC 1951 3.2.2). The code must be complete, except that a single code
// of length one (zlib and compress/flate accept it) or no code at all is
// allowed; an empty code fails when it is used.
func (h *huffman) build(lengths []uint8) bool {
	var count [maxCodeLen + 1]int
	for _, l := range lengths {
		count[l]++
	}
	count[0] = 0
	max, used := 0, 0
	left := 1
	for l := 1; l <= maxCodeLen; l++ {
		left <<= 1
		left -= count[l]
		if left < 0 {
			return false
		}
		if count[l] > 0 {
			max = l
		}
		used += count[l]
	}
	if left != 0 && !(used == 1 && max == 1) && used != 0 {
		return false
	}
	size := 1 << max
	if cap(h.t) < size {
		h.t = make([]uint32, size, 1<<maxCodeLen)
	}
	h.t = h.t[:size]
	clear(h.t)
	h.max, h.mask = uint(max), uint64(size-1)
	var next [maxCodeLen + 2]int
	code := 0
	for l := 1; l <= maxCodeLen; l++ {
		code = (code + count[l-1]) << 1
		next[l] = code
	}
	for sym, l := range lengths {
		if l == 0 {
			continue
		}
		c := next[l]
		next[l]++
		r := int(bits.Reverse16(uint16(c)) >> (16 - l))
		e := uint32(sym)<<4 | uint32(l)
		for j := r; j < size; j += 1 << l {
			h.t[j] = e
		}
	}
	return true
}

// symbol decodes one symbol; a stream ending inside a code is truncated,
// a bit pattern no code has is corrupt.
func (b *bitReader) symbol(h *huffman) (int, error) {
	if b.nb < h.max {
		b.fill()
	}
	e := h.t[b.hold&h.mask]
	l := uint(e & 15)
	if l == 0 || l > b.nb {
		if b.nb < h.max {
			return 0, b.short()
		}
		return 0, corruptAt(b.bitPos()/8, "invalid Huffman code")
	}
	b.hold >>= l
	b.nb -= l
	return int(e >> 4), nil
}

// Length and distance codes (RFC 1951 3.2.5): base value and extra bits.
var (
	lengthBase = [29]uint16{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
		35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lengthExtra = [29]uint8{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
		3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	distBase = [30]uint32{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193,
		257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	distExtra = [30]uint8{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6,
		7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
	// codeLenOrder is the order of the code length code's lengths.
	codeLenOrder = [19]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}
)

// fixedCodes returns the fixed literal/length and distance codes of block
// type 1, built on first use rather than at init: their tables take
// 256 KiB that lade-buildkitd would otherwise keep live from its start
// even when it never builds a zTOC (issue #17, peak RSS).
var fixedCodes = sync.OnceValues(func() (l, d *huffman) {
	l, d = new(huffman), new(huffman)
	var lens [288]uint8
	for i := range lens {
		switch {
		case i < 144:
			lens[i] = 8
		case i < 256:
			lens[i] = 9
		case i < 280:
			lens[i] = 7
		default:
			lens[i] = 8
		}
	}
	l.build(lens[:])
	var dl [32]uint8
	for i := range dl {
		dl[i] = 5
	}
	d.build(dl[:])
	return l, d
})
