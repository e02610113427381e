package soci

import (
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"fmt"
	"hash"
	"hash/crc32"
	"io"

	digest "github.com/opencontainers/go-digest"
)

// FromGzip builds the zTOC of an existing gzip blob (a base layer, or one a
// BuildKit pipeline compressed) in one read, whatever wrote it: lade's own
// inflater decodes it once (file table, windows, each member's CRC and
// size checked) while its compressed bytes are hashed for the span
// digests, and a checkpoint goes at a deflate block start at or past each
// span boundary, at any bit (zinfo's bits say which), as soci-snapshotter's
// zran-based builder places them.
//
// Blobs cut into byte-aligned blocks of alignBlock uncompressed bytes
// (lade's gzip: a sync flush ends each block; lade's libdeflate codec: a
// member per block) are recognised at their first block, and then only
// such block starts take checkpoints, as in the zTOC made while
// compressing (byte for byte the same for lade's pure-Go gzip). So that
// the first block can be told, no checkpoint but the first goes before
// alignBlock uncompressed bytes; 0 turns this off (pure zran placement).
func FromGzip(r io.Reader, spanSize, alignBlock int64) (*ZTOC, error) {
	if spanSize <= 0 {
		spanSize = DefaultSpanSize
	}
	s := &gzipScan{span: spanSize, align: alignBlock, h: sha256.New()}
	s.br = newBitReader(r, s.hashSpan)
	s.f = newInflater(s.br, s.took, s.blockStart)
	if err := s.run(); err != nil {
		return nil, fmt.Errorf("zTOC: %w", err)
	}
	return s.finish()
}

// gzipScan is FromGzip's state.
type gzipScan struct {
	br          *bitReader
	f           *inflater
	table       tarTable
	span, align int64
	aligned     bool // the blob is cut into aligned blocks of align bytes
	afterEmpty  bool // the block before was an empty stored block
	points      []checkpoint
	digests     []digest.Digest

	h        hash.Hash // the current span's compressed bytes
	prev     []byte    // h's state at the end of the span before
	tail     []byte    // the current span's bytes, up to tailKeep
	tailLost bool

	crc  uint32 // the current member's
	size uint32
}

// run reads every member; the blob must hold at least one.
func (s *gzipScan) run() error {
	for first := true; first || !s.br.atEnd(); first = false {
		if err := s.header(); err != nil {
			return err
		}
		s.crc, s.size = 0, 0
		if err := s.f.member(); err != nil {
			return err
		}
		if err := s.f.flush(); err != nil {
			return err
		}
		s.br.align()
		var tr [8]byte
		if err := s.br.bytes(tr[:]); err != nil {
			return fmt.Errorf("read gzip trailer: %w", err)
		}
		if binary.LittleEndian.Uint32(tr[:]) != s.crc || binary.LittleEndian.Uint32(tr[4:]) != s.size {
			return corruptAt(s.br.base+int64(s.br.i)-8, "gzip member's CRC or size does not match its data")
		}
	}
	if s.br.err != nil {
		return s.br.short()
	}
	return nil
}

// header reads a gzip member header (RFC 1952 2.3), checking its CRC16 if
// it has one; reserved flags are ignored, as compress/gzip (containerd's
// and docker's reader) ignores them.
func (s *gzipScan) header() error {
	var hdr [10]byte
	if err := s.br.bytes(hdr[:]); err != nil {
		return fmt.Errorf("read gzip header: %w", err)
	}
	if hdr[0] != 0x1f || hdr[1] != 0x8b || hdr[2] != 8 {
		return corruptAt(s.br.base+int64(s.br.i)-10, "not a gzip member header")
	}
	crc := crc32.ChecksumIEEE(hdr[:])
	read := func(n int) ([]byte, error) {
		p := make([]byte, n)
		err := s.br.bytes(p)
		crc = crc32.Update(crc, crc32.IEEETable, p)
		return p, err
	}
	flg := hdr[3]
	if flg&4 != 0 { // FEXTRA
		x, err := read(2)
		if err == nil {
			_, err = read(int(binary.LittleEndian.Uint16(x)))
		}
		if err != nil {
			return fmt.Errorf("read gzip header: %w", err)
		}
	}
	for _, bit := range []byte{8, 16} { // FNAME, FCOMMENT: zero-terminated
		for flg&bit != 0 {
			c, err := read(1)
			if err != nil {
				return fmt.Errorf("read gzip header: %w", err)
			}
			if c[0] == 0 {
				break
			}
		}
	}
	if flg&2 != 0 { // FHCRC
		want := crc
		c, err := read(2)
		if err != nil {
			return fmt.Errorf("read gzip header: %w", err)
		}
		if binary.LittleEndian.Uint16(c) != uint16(want) {
			return corruptAt(s.br.base+int64(s.br.i)-2, "gzip header CRC does not match")
		}
	}
	return nil
}

// took takes inflated data: the member's CRC, the tar's file table.
func (s *gzipScan) took(p []byte) error {
	s.crc = crc32.Update(s.crc, crc32.IEEETable, p)
	s.size += uint32(len(p))
	_, _ = s.table.Write(p)
	return nil
}

// hashSpan hashes compressed bytes of the current span.
func (s *gzipScan) hashSpan(p []byte) {
	s.h.Write(p)
	if len(s.tail)+len(p) <= tailKeep {
		s.tail = append(s.tail, p...)
	} else {
		s.tailLost = true
	}
}

// blockStart places the first checkpoint at the first block, and another
// at the first block start at least a span past the last one (more than
// a span, as zran counts, unless the blob is aligned).
func (s *gzipScan) blockStart(b blockStart) error {
	clean := b.member || s.afterEmpty
	s.afterEmpty = b.empty
	if len(s.points) == 0 {
		s.place(b)
		return nil
	}
	since := b.out - s.points[len(s.points)-1].out
	first := s.align > 0 && len(s.points) == 1 && b.out <= s.align
	if first && clean && b.out == s.align {
		s.aligned = true
	}
	// Until lade's first block would end, the blob may yet prove aligned.
	due := since > s.span && !first
	if s.aligned {
		// A blob that stops being aligned gets checkpoints anyway.
		due = since >= s.span && (clean || since >= s.span+s.align)
	}
	if due {
		s.place(b)
	}
	return nil
}

// place ends the current span and starts one at block b: zinfo's in is
// the offset of the byte after the one holding the block's first bit,
// bits the number of the block's bits in the byte before it (the span
// starts there: it has to be primed with them).
func (s *gzipScan) place(b blockStart) {
	p := checkpoint{in: (b.bitPos + 7) / 8, bits: uint8((8 - b.bitPos%8) % 8), out: b.out}
	p.window = append([]byte(nil), s.f.window()...)
	if len(s.points) > 0 {
		s.br.hashTo(p.in)
		state, _ := s.h.(encoding.BinaryMarshaler).MarshalBinary()
		s.prev = state
		s.digests = append(s.digests, digest.NewDigestFromBytes(digest.SHA256, s.h.Sum(nil)))
		s.h.Reset()
	}
	s.tail, s.tailLost = s.tail[:0], false
	s.br.hashed = p.spanStart()
	s.points = append(s.points, p)
}

// finish hashes the last span and makes the zTOC.
func (s *gzipScan) finish() (*ZTOC, error) {
	s.br.hashTo(s.br.base + int64(s.br.n))
	files, tarSize, err := s.table.finish()
	if err != nil {
		return nil, fmt.Errorf("zTOC: %w", err)
	}
	if err := s.dropFinalPoint(tarSize); err != nil {
		return nil, err
	}
	digests := append(s.digests, digest.NewDigestFromBytes(digest.SHA256, s.h.Sum(nil)))
	return &ZTOC{
		Files: files, SpanSize: s.span, Spans: len(s.points),
		CompressedSize: s.br.base + int64(s.br.n), UncompressedSize: tarSize,
		SpanDigests: digests, Checkpoints: zinfo(s.span, s.points),
	}, nil
}

// dropFinalPoint removes a checkpoint with no tar data after it (a block
// start before an empty last block), which would start an empty span, and
// folds its few bytes back into the span before it, as the zTOC made
// while compressing has it. In other blobs it stays, as zran keeps it
// (Go's compress/gzip ends with an empty block).
func (s *gzipScan) dropFinalPoint(tarSize int64) error {
	last := s.points[len(s.points)-1]
	if !s.aligned || len(s.points) == 1 || last.out < tarSize || s.tailLost {
		return nil
	}
	h := sha256.New()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(s.prev); err != nil {
		return fmt.Errorf("zTOC: restore span hash: %w", err)
	}
	tail := s.tail
	if last.bits != 0 {
		tail = tail[1:] // the byte the two spans share
	}
	h.Write(tail)
	s.h = h
	s.points = s.points[:len(s.points)-1]
	s.digests = s.digests[:len(s.digests)-1]
	return nil
}
