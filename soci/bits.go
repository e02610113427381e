package soci

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// errCorrupt is wrapped by every error about invalid deflate or gzip data.
var errCorrupt = errors.New("corrupt gzip data")

// corruptAt says where the data stopped making sense.
func corruptAt(off int64, what string) error {
	return fmt.Errorf("%w at compressed offset %d: %s", errCorrupt, off, what)
}

// keepBehind is how many bytes before the read position stay in the
// buffer when it is refilled: the bit buffer holds at most 8 of them and a
// block header in progress at most 6 more, so a block start that the
// inflater reports is still in the buffer for the span hash.
const keepBehind = 32

// bitReader reads a gzip blob: bytes for the headers and trailers, and
// LSB-first bits for deflate. The bits above nb in hold, if any, are the
// stream's next bits (loads may overlap, never disagree).
type bitReader struct {
	r    io.Reader
	buf  []byte
	i, n int   // next byte to load into hold; end of the buffered data
	base int64 // offset of buf[0] in the blob
	hold uint64
	nb   uint
	eof  bool
	err  error // read error other than io.EOF

	// hashed is the blob offset up to which bytes went to sink; sink sees
	// every byte once before it leaves buf (see hashTo).
	hashed int64
	sink   func([]byte)
}

func newBitReader(r io.Reader, sink func([]byte)) *bitReader {
	return &bitReader{r: r, buf: make([]byte, 1<<20), sink: sink}
}

// bitPos is the offset in bits of the next unread bit.
func (b *bitReader) bitPos() int64 { return (b.base+int64(b.i))*8 - int64(b.nb) }

// hashTo passes the bytes from hashed up to off to sink.
func (b *bitReader) hashTo(off int64) {
	if off > b.hashed {
		b.sink(b.buf[b.hashed-b.base : off-b.base])
		b.hashed = off
	}
}

// more reads more of the blob into buf, keeping keepBehind bytes before
// the read position; false at the end of the blob or on a read error.
func (b *bitReader) more() bool {
	if b.eof || b.err != nil {
		return false
	}
	if k := b.i - keepBehind; k > 0 && b.n == len(b.buf) {
		b.hashTo(b.base + int64(k))
		b.n = copy(b.buf, b.buf[k:b.n])
		b.i -= k
		b.base += int64(k)
	}
	for {
		m, err := b.r.Read(b.buf[b.n:])
		b.n += m
		if errors.Is(err, io.EOF) {
			b.eof = true
		} else if err != nil {
			b.err = err
		}
		if m > 0 || err != nil {
			return m > 0
		}
	}
}

// fill loads bytes into hold until it has at least 56 bits or the blob
// ends.
func (b *bitReader) fill() {
	for b.nb <= 56 {
		if b.i+8 <= b.n {
			b.hold |= binary.LittleEndian.Uint64(b.buf[b.i:]) << b.nb
			k := (63 - b.nb) >> 3
			b.i += int(k)
			b.nb += k << 3
			return
		}
		if b.i < b.n {
			b.hold |= uint64(b.buf[b.i]) << b.nb
			b.i++
			b.nb += 8
			continue
		}
		if !b.more() {
			return
		}
	}
}

// short is the error for a blob that ended (or failed) mid-stream.
func (b *bitReader) short() error {
	if b.err != nil {
		return fmt.Errorf("read blob: %w", b.err)
	}
	return io.ErrUnexpectedEOF
}

// need makes sure n bits (at most 56) are in hold.
func (b *bitReader) need(n uint) error {
	if b.nb < n {
		b.fill()
		if b.nb < n {
			return b.short()
		}
	}
	return nil
}

// take consumes n bits that need made available.
func (b *bitReader) take(n uint) uint32 {
	v := uint32(b.hold & (1<<n - 1))
	b.hold >>= n
	b.nb -= n
	return v
}

// align drops the bits up to the next byte boundary.
func (b *bitReader) align() { b.take(b.nb & 7) }

// bytes reads len(p) bytes at a byte boundary.
func (b *bitReader) bytes(p []byte) error {
	for len(p) > 0 && b.nb >= 8 {
		p[0] = byte(b.take(8))
		p = p[1:]
	}
	if b.nb == 0 {
		b.hold = 0 // its bits above nb are bytes read directly below
	}
	for len(p) > 0 {
		if b.i == b.n && !b.more() {
			return b.short()
		}
		k := copy(p, b.buf[b.i:b.n])
		b.i += k
		p = p[k:]
	}
	return nil
}

// atEnd reports whether the blob has no more bytes (at a byte boundary).
func (b *bitReader) atEnd() bool {
	return b.nb == 0 && b.i == b.n && !b.more() && b.err == nil
}
