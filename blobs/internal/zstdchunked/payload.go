package zstdchunked

import (
	"crypto/sha256"
	"encoding/binary"
	"hash"

	digest "github.com/opencontainers/go-digest"
)

// chunk is one piece of a regular file's content, in a frame of its own.
type chunk struct {
	chunkOffset int64 // offset in the file
	offset      int64 // offset of its frame in the blob
	size        int64
	digest      string
	typ         string
}

// payload splits one regular file's content into chunks as
// containers/storage's compressor does: a chunk ends where the rolling
// checksum says so, and a run of at least holesThreshold zero bytes is a
// chunk of its own of type zeros (shorter runs are data). Each chunk is
// one zstd frame; the file's frames follow the frame of its tar header.
type payload struct {
	fw      *frameWriter
	rs      rollSum
	file    hash.Hash // sha256 of the whole content
	chunkH  hash.Hash // sha256 of the current chunk; unused in the first chunk, whose digest is file's so far
	first   bool      // the current chunk is the file's first
	zeros   int64     // zero bytes seen and not yet emitted
	started bool      // the file's first frame has begun

	written    int64 // content bytes emitted
	chunkStart int64 // content offset of the current chunk
	start      int64 // offset of the file's first frame
	last       int64 // offset of the current chunk's frame
	chunks     []chunk
}

func newPayload(fw *frameWriter) *payload {
	return &payload{fw: fw, file: sha256.New(), chunkH: sha256.New()}
}

// reset prepares for the next file.
func (p *payload) reset() {
	p.rs.reset()
	p.file.Reset()
	p.first, p.zeros, p.started = true, 0, false
	p.written, p.chunkStart, p.start, p.last = 0, 0, 0, 0
	p.chunks = p.chunks[:0]
}

// write adds content bytes. Bytes are emitted in the largest slices
// possible: at chunk ends, before long zero runs and at the end of b; a
// short zero run stays part of the slice it is in. Runs of non-zero bytes
// go through rollSum.scan, zero runs are counted word by word.
func (p *payload) write(b []byte) {
	seg, run := 0, -1 // start of the bytes not yet emitted; start of the pending zero run in b
	for i := 0; i < len(b); {
		if b[i] == 0 {
			if p.zeros == 0 {
				run = i
			}
			n := zeroPrefix(b[i:])
			p.zeros += int64(n)
			i += n
			continue
		}
		if p.zeros > 0 {
			seg = p.endRun(b, seg, run, i)
			run = -1
		}
		n, split := p.rs.scan(b[i:])
		i += n
		if split {
			p.emit(b[seg:i])
			p.endChunk(chunkTypeData)
			seg = i
		}
	}
	switch {
	case p.zeros == 0:
		p.emit(b[seg:])
	case run >= 0:
		p.emit(b[seg:run]) // the run's zeros stay pending
	}
}

// zeroPrefix returns the number of zero bytes b starts with.
func zeroPrefix(b []byte) int {
	n := 0
	for len(b)-n >= 8 && binary.LittleEndian.Uint64(b[n:]) == 0 {
		n += 8
	}
	for n < len(b) && b[n] == 0 {
		n++
	}
	return n
}

// endRun resolves the zero run ending before b[i]: b[run:i], or, when run
// is negative, b[:i] after zeros carried from earlier writes (not yet
// emitted). A long run is a zeros chunk; a short one is data, rolled byte
// by byte. It returns the start of the bytes of b not yet emitted.
func (p *payload) endRun(b []byte, seg, run, i int) int {
	if p.zeros >= holesThreshold {
		if run >= 0 {
			p.emit(b[seg:run])
		}
		p.flushZeros()
		return i
	}
	if run < 0 {
		run = 0
		p.zeros -= int64(i)
		p.flushZeros()
	}
	p.zeros = 0
	for j := run; j < i; j++ {
		if p.rs.roll(0) {
			p.emit(b[seg : j+1])
			p.endChunk(chunkTypeData)
			seg = j + 1
		}
	}
	return seg
}

var zeroBlock [holesThreshold]byte

// flushZeros emits the pending zero run, whose bytes are no longer at
// hand: a zeros chunk when it is long, else data bytes, rolled one by one.
func (p *payload) flushZeros() {
	n := p.zeros
	p.zeros = 0
	if n >= holesThreshold {
		p.rs.rollZeros(n)
		if p.started {
			p.endChunk(chunkTypeData)
		}
		for left := n; left > 0; left -= min(left, holesThreshold) {
			p.emit(zeroBlock[:min(left, holesThreshold)])
		}
		p.endChunk(chunkTypeZeros)
		return
	}
	from := int64(0)
	for i := int64(0); i < n; i++ {
		if p.rs.roll(0) {
			p.emit(zeroBlock[:i+1-from])
			p.endChunk(chunkTypeData)
			from = i + 1
		}
	}
	p.emit(zeroBlock[:n-from])
}

// emit writes content bytes of the current chunk.
func (p *payload) emit(b []byte) {
	if len(b) == 0 {
		return
	}
	if !p.started {
		p.started = true
		p.start = p.fw.offset()
		p.last = p.start
	}
	p.fw.write(b)
	p.file.Write(b)
	if !p.first {
		p.chunkH.Write(b)
	}
	p.written += int64(len(b))
}

// endChunk ends the current chunk and its frame.
func (p *payload) endChunk(typ string) {
	off := p.fw.offset()
	if size := p.written - p.chunkStart; size > 0 {
		h := p.chunkH
		if p.first {
			h = p.file
		}
		p.chunks = append(p.chunks, chunk{
			chunkOffset: p.chunkStart, offset: p.last, size: size,
			digest: digest.NewDigestFromBytes(digest.SHA256, h.Sum(nil)).String(), typ: typ,
		})
		p.first = false
		p.chunkH.Reset()
	}
	p.last = off
	p.chunkStart = p.written
}

// finish ends the file's content and fills in its TOC entries: main gets
// the digest and frame offsets; more chunks become entries of their own.
func (p *payload) finish(main FileMetadata) []FileMetadata {
	if p.zeros > 0 {
		p.flushZeros()
	}
	if !p.started {
		return []FileMetadata{main}
	}
	p.endChunk(chunkTypeData)
	main.Digest = digest.NewDigestFromBytes(digest.SHA256, p.file.Sum(nil)).String()
	main.Offset, main.EndOffset = p.start, p.last
	entries := []FileMetadata{main}
	if len(p.chunks) < 2 {
		return entries
	}
	for i, c := range p.chunks {
		if i > 0 {
			entries = append(entries, FileMetadata{Type: typeChunk, Name: main.Name, ChunkOffset: c.chunkOffset})
		}
		e := &entries[i]
		e.ChunkSize, e.Offset, e.ChunkDigest, e.ChunkType = c.size, c.offset, c.digest, c.typ
	}
	return entries
}
