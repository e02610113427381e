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
// digests as they go by. The blob must be lade's gzip (or pgzip's): one
// member with a plain 10-byte header whose deflate stream is cut into
// blocks of blockSize uncompressed bytes, each ending with a sync flush;
// checkpoints are placed where those blocks start, found at the sync
// marker and checked by inflating from there. Other gzip is refused with
// an error saying so.
func FromGzip(r io.Reader, spanSize, blockSize int64) (*ZTOC, error) {
	b := NewBuilder(spanSize)
	t := &tap{br: bufio.NewReaderSize(r, 1<<20), b: b}
	var hdr [gzipHeader]byte
	if _, err := io.ReadFull(t, hdr[:]); err != nil {
		return nil, fmt.Errorf("zTOC: read gzip header: %w", err)
	}
	fr := flate.NewReader(t)
	buf := make([]byte, blockSize)
	var out int64
	var check []byte // what the last checkpoint inflates to, to compare
	for {
		n, err := io.ReadFull(fr, buf)
		if check != nil && !bytes.HasPrefix(buf[:n], check[:min(len(check), n)]) {
			return nil, fmt.Errorf("zTOC: no block of this gzip starts at uncompressed offset %d: it is not lade's gzip", out)
		}
		check = nil
		_, _ = b.Tar().Write(buf[:n])
		out += int64(n)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("zTOC: inflate: %w", err)
		}
		if out-b.points[len(b.points)-1].out < b.spanSize {
			continue
		}
		window := buf[len(buf)-windowSize:]
		c, err := t.marker()
		if err != nil {
			return nil, fmt.Errorf("zTOC: at uncompressed offset %d: %w", out, err)
		}
		if check, err = t.inflateFrom(c, window); err != nil {
			return nil, fmt.Errorf("zTOC: at uncompressed offset %d: %w", out, err)
		}
		t.checkpoint(c, out, window)
	}
	if err := t.rest(); err != nil {
		return nil, err
	}
	return b.Finish()
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

// marker finds the sync marker ending the block just inflated: the
// inflater has read up to a few bytes past its last symbol, so the marker
// ends within a few bytes of n.
func (t *tap) marker() (int64, error) {
	ahead, _ := t.br.Peek(16)
	start := max(len(t.held)-16, 0)
	near := append(append([]byte(nil), t.held[start:]...), ahead...)
	i := bytes.Index(near, syncMarker)
	if i < 0 {
		return 0, errors.New("no sync-flush marker where a block should end: this gzip is not cut into lade's 1 MiB blocks")
	}
	return t.n - int64(len(t.held)-start) + int64(i+len(syncMarker)), nil
}

// inflateFrom inflates a little from compressed offset c with window as
// history, as a reader starting at the checkpoint would.
func (t *tap) inflateFrom(c int64, window []byte) ([]byte, error) {
	var from []byte
	if k := int(c - (t.n - int64(len(t.held)))); k < len(t.held) {
		from = append(from, t.held[k:]...)
	}
	ahead, _ := t.br.Peek(t.br.Size())
	skip := max(c-t.n, 0)
	if skip > int64(len(ahead)) {
		return nil, errors.New("checkpoint beyond the read-ahead")
	}
	from = append(from, ahead[skip:]...)
	out := make([]byte, 4096)
	n, err := io.ReadFull(flate.NewReaderDict(bytes.NewReader(from), window), out)
	if n == 0 && err != nil {
		return nil, fmt.Errorf("cannot inflate from the block start: %w", err)
	}
	return out[:n], nil
}

// rest reads the trailer and hashes what is held, refusing a second gzip
// member (each of which would need its own header in the zinfo).
func (t *tap) rest() error {
	end := t.n
	if _, err := io.Copy(io.Discard, onlyRead{t}); err != nil {
		return fmt.Errorf("zTOC: read blob: %w", err)
	}
	if t.n-end > 8 {
		return fmt.Errorf("zTOC: %d bytes follow the first gzip member: a blob of several members (libdeflate's) is not supported", t.n-end-8)
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
