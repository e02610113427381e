package soci

import (
	"bufio"
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"
)

// syncMarker ends the empty stored block of a deflate sync flush, after
// which the stream is byte-aligned.
var syncMarker = []byte{0, 0, 0xff, 0xff}

// FromGzip builds the zTOC of an existing gzip blob (a base layer, or one a
// BuildKit pipeline compressed) in one read: r is inflated once for the
// file table and the windows, and its compressed bytes hashed for the span
// digests as they go by. The blob must be cut into blocks of blockSize
// uncompressed bytes that start byte-aligned: lade's gzip (and pgzip's and
// ISA-L's as lade drives it: one member, each block ending with a sync
// flush) or lade's libdeflate codec (each block a gzip member). A
// checkpoint is placed where such a block starts (at the sync marker or
// after the next member's header) and checked by inflating from there.
// Other gzip is refused with an error saying so.
func FromGzip(r io.Reader, spanSize, blockSize int64) (*ZTOC, error) {
	g := &gzipScan{b: NewBuilder(spanSize), buf: make([]byte, blockSize), window: make([]byte, windowSize)}
	g.t = &tap{br: bufio.NewReaderSize(r, 1<<20), b: g.b}
	if err := g.header(); err != nil {
		return nil, err
	}
	for {
		more, err := g.member()
		if err != nil {
			return nil, err
		}
		if !more {
			break
		}
	}
	if err := g.t.rest(); err != nil {
		return nil, err
	}
	return g.b.Finish()
}

// gzipScan is FromGzip's state.
type gzipScan struct {
	b      *Builder
	t      *tap
	buf    []byte
	out    int64  // uncompressed bytes so far
	window []byte // the last 32 KiB of them
	check  []byte // what the last checkpoint inflates to, to compare
	missed bool   // a block ended with no sync flush: the member must end
}

// header reads a member header: 10 bytes without optional fields.
func (g *gzipScan) header() error {
	var hdr [gzipHeader]byte
	if _, err := io.ReadFull(g.t, hdr[:]); err != nil {
		return fmt.Errorf("zTOC: read gzip header: %w", err)
	}
	if hdr[0] != 0x1f || hdr[1] != 0x8b || hdr[3] != 0 {
		return errors.New("zTOC: a gzip member header has optional fields: not lade's gzip")
	}
	return nil
}

// member inflates one member and reads its trailer and the next header;
// more is false at the end of the blob.
func (g *gzipScan) member() (more bool, err error) {
	fr := flate.NewReader(g.t)
	for {
		n, err := io.ReadFull(fr, g.buf)
		if n > 0 && g.missed {
			return false, fmt.Errorf("zTOC: no block of this gzip starts at uncompressed offset %d (no sync flush, no new member): it is not lade's gzip", g.out)
		}
		if err := g.took(g.buf[:n]); err != nil {
			return false, err
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return false, fmt.Errorf("zTOC: inflate: %w", err)
		}
		if !g.due() {
			continue
		}
		// A sync marker that no block follows (a member's last block
		// may end with one) is no block start: then the member must end.
		if c, ok := g.t.marker(); !ok || g.t.memberEndsAt(c) || g.place(c) != nil {
			g.missed = true
		}
	}
	g.missed = false
	var trailer [8]byte
	if _, err := io.ReadFull(g.t, trailer[:]); err != nil {
		return false, fmt.Errorf("zTOC: read gzip trailer: %w", err)
	}
	if _, err := g.t.br.Peek(1); err != nil {
		return false, nil
	}
	if err := g.header(); err != nil {
		return false, err
	}
	if g.due() {
		return true, g.place(g.t.n)
	}
	return true, nil
}

// took checks and records uncompressed data.
func (g *gzipScan) took(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	if g.check != nil && !bytes.HasPrefix(p, g.check[:min(len(g.check), len(p))]) {
		return fmt.Errorf("zTOC: no block of this gzip starts at uncompressed offset %d: it is not lade's gzip", g.out)
	}
	g.check = nil
	_, _ = g.b.Tar().Write(p)
	g.out += int64(len(p))
	if len(p) >= windowSize {
		copy(g.window, p[len(p)-windowSize:])
	} else {
		g.window = append(g.window[len(p):], p...)
	}
	return nil
}

// due reports whether a span boundary has been passed since the last
// checkpoint.
func (g *gzipScan) due() bool {
	return g.out-g.b.points[len(g.b.points)-1].out >= g.b.spanSize
}

// place checks and places a checkpoint at compressed offset c.
func (g *gzipScan) place(c int64) error {
	check, err := g.t.inflateFrom(c, g.window)
	if err != nil {
		return fmt.Errorf("zTOC: at uncompressed offset %d: %w", g.out, err)
	}
	if len(check) == 0 {
		return fmt.Errorf("zTOC: at uncompressed offset %d: no data follows the block start", g.out)
	}
	g.check = check
	g.t.checkpoint(c, g.out, g.window)
	return nil
}

// tap reads the blob for the inflater byte by byte (so the inflater reads
// no further than it needs), holding the compressed bytes back from the
// span hash until the next checkpoint, which may lie just behind them, is
// known.
type tap struct {
	br      *bufio.Reader
	b       *Builder
	n       int64  // bytes read from br
	held    []byte // bytes n-len(held) .. n, not yet hashed
	pending *checkpoint
}

// checkpoint places a checkpoint at compressed offset c, once the bytes
// before it are read.
func (t *tap) checkpoint(c, out int64, window []byte) {
	t.pending = &checkpoint{in: c, out: out, window: append([]byte(nil), window...)}
	t.settle()
}

// settle hands the pending checkpoint to the builder once it is reached.
func (t *tap) settle() {
	if p := t.pending; p != nil && t.n >= p.in {
		t.flushTo(p.in)
		t.b.Block(p.in, p.out, p.window)
		t.pending = nil
	}
}

func (t *tap) ReadByte() (byte, error) {
	c, err := t.br.ReadByte()
	if err == nil {
		t.n++
		t.held = append(t.held, c)
		t.settle()
		t.spill()
	}
	return c, err
}

func (t *tap) Read(p []byte) (int, error) {
	n, err := t.br.Read(p)
	t.n += int64(n)
	t.held = append(t.held, p[:n]...)
	t.settle()
	t.spill()
	return n, err
}

// spill hashes held bytes that no checkpoint can precede any more.
func (t *tap) spill() {
	if len(t.held) >= 1<<16 && t.pending == nil {
		t.flushTo(t.n - 64)
	}
}

// flushTo hashes the held bytes before offset c.
func (t *tap) flushTo(c int64) {
	k := int(c - (t.n - int64(len(t.held))))
	t.b.see(t.held[:k])
	t.held = append(t.held[:0], t.held[k:]...)
}

// marker finds the sync marker ending the block just inflated, if there is
// one (a member may end there instead): the inflater has read up to a few
// bytes past its last symbol, so the marker ends within a few bytes of n.
func (t *tap) marker() (int64, bool) {
	ahead, _ := t.br.Peek(16)
	start := max(len(t.held)-16, 0)
	near := append(append([]byte(nil), t.held[start:]...), ahead...)
	i := bytes.Index(near, syncMarker)
	if i < 0 {
		return 0, false
	}
	return t.n - int64(len(t.held)-start) + int64(i+len(syncMarker)), true
}

// memberEndsAt reports whether a gzip trailer follows offset c (then the
// end of the blob or another member): the marker there ended a member's
// last block (Go's compress/gzip closes with an empty stored block).
func (t *tap) memberEndsAt(c int64) bool {
	next, eof := t.from(c, 8+3)
	if len(next) == 8 && eof {
		return true
	}
	return len(next) == 11 && bytes.Equal(next[8:], []byte{0x1f, 0x8b, 8})
}

// from returns up to n bytes of the blob from offset c (held or read
// ahead, not consumed) and whether the blob ends before n.
func (t *tap) from(c int64, n int) ([]byte, bool) {
	var out []byte
	if k := int(c - (t.n - int64(len(t.held)))); k >= 0 && k < len(t.held) {
		out = append(out, t.held[k:]...)
	}
	skip := int(max(c-t.n, 0))
	ahead, err := t.br.Peek(min(skip+n, t.br.Size()))
	if skip < len(ahead) {
		out = append(out, ahead[skip:]...)
	}
	return out[:min(len(out), n)], err != nil && len(out) < n
}

// inflateFrom inflates a little from compressed offset c with window as
// history, as a reader starting at the checkpoint would.
func (t *tap) inflateFrom(c int64, window []byte) ([]byte, error) {
	from, _ := t.from(c, t.br.Size())
	out := make([]byte, 4096)
	n, err := io.ReadFull(flate.NewReaderDict(bytes.NewReader(from), window), out)
	if n == 0 && err != nil {
		return nil, fmt.Errorf("cannot inflate from the block start: %w", err)
	}
	return out[:n], nil
}

// rest reads what follows the last member and hashes what is held.
func (t *tap) rest() error {
	if _, err := io.Copy(io.Discard, onlyRead{t}); err != nil {
		return fmt.Errorf("zTOC: read blob: %w", err)
	}
	if t.pending != nil {
		return errors.New("zTOC: the blob ends before a block the inflater found")
	}
	t.flushTo(t.n)
	return nil
}

// onlyRead hides ReadByte so io.Copy reads in blocks.
type onlyRead struct{ r io.Reader }

func (o onlyRead) Read(p []byte) (int, error) { return o.r.Read(p) }
