package soci

// A DEFLATE decoder (RFC 1951) of lade's own: compress/flate does not say
// where blocks start, and a zTOC checkpoint has to sit at a block start.

// outBuffer is the inflater's output buffer past the 32 KiB of history.
const outBuffer = 1 << 20

// blockStart describes a deflate block about to be decoded.
type blockStart struct {
	bitPos int64 // offset in bits of the block header's first bit
	out    int64 // uncompressed bytes before it (all members)
	member bool  // the first block of a gzip member
	empty  bool  // a stored block of no bytes that is not the last one
}

// inflater decodes deflate streams into buf: buf[:windowSize] is history,
// new output goes from windowSize up to w and is handed to emit in large
// pieces; at each block start it asks block (which may read window()).
type inflater struct {
	br      *bitReader
	buf     []byte
	w       int
	emitted int64 // bytes handed to emit
	// histBase + w is the number of bytes this member produced up to w:
	// a distance may not reach further back.
	histBase int64
	emit     func([]byte) error
	block    func(blockStart) error
	lit      huffman
	dist     huffman
	lens     [286 + 30]uint8
}

func newInflater(br *bitReader, emit func([]byte) error, block func(blockStart) error) *inflater {
	return &inflater{br: br, buf: make([]byte, windowSize+outBuffer+258), w: windowSize, emit: emit, block: block}
}

// out is the number of uncompressed bytes so far.
func (f *inflater) out() int64 { return f.emitted + int64(f.w-windowSize) }

// window is the 32 KiB before the current position, zeros before the
// stream's start (as zlib's zran keeps it).
func (f *inflater) window() []byte { return f.buf[f.w-windowSize : f.w] }

// flush hands the new output to emit and keeps the last 32 KiB as history.
func (f *inflater) flush() error {
	if f.w == windowSize {
		return nil
	}
	if err := f.emit(f.buf[windowSize:f.w]); err != nil {
		return err
	}
	f.emitted += int64(f.w - windowSize)
	f.histBase += int64(f.w - windowSize)
	copy(f.buf, f.buf[f.w-windowSize:f.w])
	f.w = windowSize
	return nil
}

// member decodes one deflate stream, up to and including its last block.
func (f *inflater) member() error {
	f.histBase = -int64(f.w)
	br := f.br
	for first := true; ; first = false {
		start := blockStart{bitPos: br.bitPos(), member: first}
		if err := br.need(3); err != nil {
			return err
		}
		final := br.take(1) == 1
		var err error
		switch br.take(2) {
		case 0:
			err = f.stored(start, final)
		case 1:
			start.out = f.out()
			if err = f.block(start); err == nil {
				err = f.codes(fixedCodes())
			}
		case 2:
			start.out = f.out()
			if err = f.block(start); err == nil {
				err = f.dynamic()
			}
			if err == nil {
				err = f.codes(&f.lit, &f.dist)
			}
		default:
			err = corruptAt(start.bitPos/8, "invalid block type")
		}
		if err != nil {
			return err
		}
		if final {
			return nil
		}
	}
}

// stored copies a stored block.
func (f *inflater) stored(start blockStart, final bool) error {
	br := f.br
	br.align()
	var hdr [4]byte
	if err := br.bytes(hdr[:]); err != nil {
		return err
	}
	n := int(hdr[0]) | int(hdr[1])<<8
	if n != ^(int(hdr[2])|int(hdr[3])<<8)&0xffff {
		return corruptAt(start.bitPos/8, "stored block length check fails")
	}
	start.out, start.empty = f.out(), n == 0 && !final
	if err := f.block(start); err != nil {
		return err
	}
	for n > 0 {
		if f.w == len(f.buf) {
			if err := f.flush(); err != nil {
				return err
			}
		}
		k := min(n, len(f.buf)-f.w)
		if err := br.bytes(f.buf[f.w : f.w+k]); err != nil {
			return err
		}
		f.w += k
		n -= k
	}
	return nil
}

// dynamic reads a dynamic block's code definitions into f.lit and f.dist.
func (f *inflater) dynamic() error {
	br := f.br
	if err := br.need(14); err != nil {
		return err
	}
	nlit := int(br.take(5)) + 257
	ndist := int(br.take(5)) + 1
	nclen := int(br.take(4)) + 4
	if nlit > 286 || ndist > 30 {
		return corruptAt(br.bitPos()/8, "too many length or distance codes")
	}
	var clens [19]uint8
	for i := 0; i < nclen; i++ {
		if err := br.need(3); err != nil {
			return err
		}
		clens[codeLenOrder[i]] = uint8(br.take(3))
	}
	var clen huffman
	if !clen.build(clens[:]) {
		return corruptAt(br.bitPos()/8, "invalid code length code")
	}
	lens := f.lens[:nlit+ndist]
	for i := 0; i < len(lens); {
		sym, err := br.symbol(&clen)
		if err != nil {
			return err
		}
		if sym < 16 {
			lens[i] = uint8(sym)
			i++
			continue
		}
		var rep, extra uint
		var val uint8
		switch sym {
		case 16:
			if i == 0 {
				return corruptAt(br.bitPos()/8, "repeated code length with none before")
			}
			rep, extra, val = 3, 2, lens[i-1]
		case 17:
			rep, extra = 3, 3
		default:
			rep, extra = 11, 7
		}
		if err := br.need(extra); err != nil {
			return err
		}
		rep += uint(br.take(extra))
		if i+int(rep) > len(lens) {
			return corruptAt(br.bitPos()/8, "code lengths run past their count")
		}
		for ; rep > 0; rep-- {
			lens[i] = val
			i++
		}
	}
	if !f.lit.build(lens[:nlit]) || !f.dist.build(lens[nlit:]) {
		return corruptAt(br.bitPos()/8, "invalid literal/length or distance code")
	}
	return nil
}

// codes decodes a Huffman-coded block's symbols up to its end code.
func (f *inflater) codes(lit, dist *huffman) error {
	br := f.br
	buf, w := f.buf, f.w
	limit := len(buf) - 258
	for {
		if w >= limit {
			f.w = w
			if err := f.flush(); err != nil {
				return err
			}
			w = f.w
		}
		if br.nb < 48 { // the longest length/distance pair
			br.fill()
		}
		e := lit.t[br.hold&lit.mask]
		l := uint(e & 15)
		if l == 0 || l > br.nb {
			f.w = w
			_, err := br.symbol(lit) // says truncated or corrupt
			return err
		}
		br.hold >>= l
		br.nb -= l
		sym := int(e >> 4)
		if sym < 256 {
			buf[w] = byte(sym)
			w++
			continue
		}
		if sym == 256 {
			f.w = w
			return nil
		}
		sym -= 257
		if sym >= len(lengthBase) {
			return corruptAt(br.bitPos()/8, "invalid length code")
		}
		n := int(lengthBase[sym])
		if x := uint(lengthExtra[sym]); x > 0 {
			if br.nb < x {
				return br.short()
			}
			n += int(br.take(x))
		}
		f.w = w
		ds, err := br.symbol(dist)
		if err != nil {
			return err
		}
		if ds >= len(distBase) {
			return corruptAt(br.bitPos()/8, "invalid distance code")
		}
		d := int(distBase[ds])
		if x := uint(distExtra[ds]); x > 0 {
			if err := br.need(x); err != nil {
				return err
			}
			d += int(br.take(x))
		}
		if int64(d) > f.histBase+int64(w) {
			return corruptAt(br.bitPos()/8, "distance too far back")
		}
		if d >= n {
			copy(buf[w:w+n], buf[w-d:])
		} else {
			// Overlapping: each copy doubles the repeated run.
			for k := 0; k < n; {
				k += copy(buf[w+k:w+n], buf[w-d:w+k])
			}
		}
		w += n
	}
}
