package blobs

import (
	"errors"
	"hash/crc32"
	"io"
	"runtime"
	"sync"

	"github.com/lade-build/lade/blobs/internal/isal"
)

// Native gzip (see codecselect.go). Like pargzip, a native gzip stream is
// cut into 1 MiB input blocks compressed independently, so that blocks
// can run on several cores while the bytes stay the same for any number
// of them:
//
//   - ISA-L (levels 1-3) writes one gzip member: each block is deflated
//     primed with the previous block's last 32 KiB, sync-flushed (so it
//     ends byte-aligned), the last one closed; the header and the CRC-32
//     and size trailer are lade's.
//   - libdeflate (levels 4-9) compresses whole buffers only, with no
//     dictionary and always a final block, so each block is a gzip member
//     of its own (18 bytes of header and trailer per MiB). Every gzip
//     reader reads multi-member files as one stream (RFC 1952; Go's
//     compress/gzip, hence containerd, Docker and BuildKit; pigz; gzip).
//     A block whose sampled bytes look random is stored, as libdeflate's
//     level 0 would store it (storedMember): libdeflate's match finder
//     costs ten times pargzip's on such data, and a stored block needs
//     neither an encoder nor an output buffer.
//
// A block is compressed on the caller's goroutine, or, while cores are
// free (codecWorkers), on goroutines of its own, written in order.

// gzipBlock is the input size of one native gzip block.
const gzipBlock = 1 << 20

// gzipNative maps a gzip level onto the native library that serves it
// and that library's own level: 1-3 on ISA-L 1-3 (ISA-L's level 0 is as
// fast as 1 with 12 % larger output, so it is not offered), 4-9 on
// libdeflate one level lower (libdeflate's 5 makes blobs smaller than Go's
// compress/gzip at 6 for a third of its CPU; see docs/performance.md).
// Level 0 (stored) has no native library: "".
func gzipNative(level int) (lib string, nativeLevel int) {
	switch {
	case level >= 1 && level <= 3:
		return "isal", level
	case level >= 4 && level <= 9:
		return "libdeflate", level - 1
	}
	return "", 0
}

// blockEncoder compresses one block: a native encoder, used by one
// goroutine at a time.
type blockEncoder interface {
	// block appends the compressed block to dst: dict is the previous
	// block's tail (nil for the first), final marks the stream's last.
	block(dst, dict, in []byte, final bool) ([]byte, error)
}

// nativeGzip is the block format of one library at one level.
type nativeGzip struct {
	members bool // each block is a gzip member (libdeflate); else raw deflate in one member
	dict    int  // the dictionary carried from block to block
	encs    *encoderPool
}

func newNativeGzip(level int) (*nativeGzip, error) {
	lib, nl := gzipNative(level)
	switch lib {
	case "isal":
		return &nativeGzip{dict: isal.HistSize, encs: encoders(lib, nl)}, nil
	case "libdeflate":
		return &nativeGzip{members: true, encs: encoders(lib, nl)}, nil
	}
	return nil, errors.New("gzip: no native encoder for level 0: use the pure-Go gzip")
}

// nativeGzipWriter is one native gzip stream. It is not safe for
// concurrent use.
type nativeGzipWriter struct {
	w      io.Writer
	f      *nativeGzip
	decide func() int
	cur    *gzipJob
	tail   []byte
	fifo   []*gzipJob // blocks submitted and not yet written, in order
	crc    uint32
	size   uint32
	blocks int
	err    error
	closed bool
}

func newNativeGzipWriter(w io.Writer, level, limit int) (*nativeGzipWriter, error) {
	f, err := newNativeGzip(level)
	if err != nil {
		return nil, err
	}
	return &nativeGzipWriter{w: w, f: f, decide: func() int { return currentWorkers(limit) }}, nil
}

// Write implements io.Writer.
func (z *nativeGzipWriter) Write(p []byte) (int, error) {
	if z.closed {
		return 0, errors.New("gzip: write after close")
	}
	n := 0
	for z.err == nil && n < len(p) {
		if z.cur == nil {
			z.cur = newGzipJob()
		}
		c := copy(z.cur.in[len(z.cur.in):gzipBlock], p[n:])
		if !z.f.members {
			z.crc = crc32.Update(z.crc, crc32.IEEETable, p[n:n+c])
			z.size += uint32(c)
		}
		z.cur.in, n = z.cur.in[:len(z.cur.in)+c], n+c
		if len(z.cur.in) == gzipBlock {
			z.submit(false)
		}
	}
	return n, z.err
}

// Close compresses what is buffered, writes every block and, for a
// single-member stream, the trailer. It does not close the underlying
// writer.
func (z *nativeGzipWriter) Close() error {
	if z.closed {
		return z.err
	}
	z.closed = true
	if z.err == nil && (z.cur != nil || z.blocks == 0 || !z.f.members) {
		if z.cur == nil {
			z.cur = newGzipJob()
		}
		z.submit(true)
	}
	for len(z.fifo) > 0 {
		z.writeOldest()
	}
	if z.err == nil && !z.f.members {
		var t [8]byte
		put4(t[0:4], z.crc)
		put4(t[4:8], z.size)
		z.write(t[:])
	}
	return z.err
}

// submit compresses the current block, on this goroutine when no core is
// free, else on a goroutine of its own, keeping at most as many blocks in
// flight as cores it may use.
func (z *nativeGzipWriter) submit(final bool) {
	j := z.cur
	z.cur, j.final = nil, final
	if z.tail != nil {
		j.dict = append(j.dict[:0], z.tail...)
	}
	if z.f.dict > 0 && !final {
		z.tail = append(z.tail[:0], j.in[len(j.in)-min(z.f.dict, len(j.in)):]...)
	}
	if z.blocks == 0 && !z.f.members {
		z.write(gzipHeader[:])
	}
	z.blocks++
	workers := z.decide()
	for len(z.fifo) > 0 && len(z.fifo) >= workers {
		z.writeOldest()
	}
	if workers < 2 {
		z.f.run(j)
		z.fifo = append(z.fifo, j)
		z.writeOldest()
		return
	}
	z.fifo = append(z.fifo, j)
	go z.f.run(j)
}

// run compresses j and signals it done. A block of a member format that
// looks incompressible is only checksummed: writeOldest writes it stored.
func (f *nativeGzip) run(j *gzipJob) {
	if f.members && incompressible(j.in) {
		j.stored, j.crc = true, crc32.ChecksumIEEE(j.in)
		j.done <- struct{}{}
		return
	}
	encoding.acquire()
	e, err := f.encs.get()
	if err == nil {
		j.out, err = e.block(j.borrowOut(), j.dict, j.in, j.final)
		f.encs.put(e)
	}
	if err == nil {
		j.settle() // before the slot goes: the next block borrows this buffer
	}
	encoding.release()
	j.err = err
	j.done <- struct{}{}
}

// encoding bounds the blocks being encoded at once, process-wide, to
// GOMAXPROCS (read at each block: Go may change it at run time). A block
// encoded beyond the cores gains no CPU, since the C call runs on a thread
// of its own and only shares the cores, but holds a native encoder (about
// 1 MB of C memory at libdeflate's level 5) while it does: with more layers
// than cores, each encoding its blocks on its own goroutine, every layer
// used to hold one.
var encoding = newEncodeSlots()

// encodeSlots is a counting semaphore whose size is GOMAXPROCS.
type encodeSlots struct {
	mu     sync.Mutex
	cond   sync.Cond
	n, max int // max: the most held at once, for tests
}

func newEncodeSlots() *encodeSlots {
	s := &encodeSlots{}
	s.cond.L = &s.mu
	return s
}

func (s *encodeSlots) acquire() {
	s.mu.Lock()
	for s.n >= runtime.GOMAXPROCS(0) {
		s.cond.Wait()
	}
	s.n++
	s.max = max(s.max, s.n)
	s.mu.Unlock()
}

func (s *encodeSlots) release() {
	s.mu.Lock()
	s.n--
	s.mu.Unlock()
	s.cond.Signal()
}

// writeOldest waits for the oldest block in flight and writes it.
func (z *nativeGzipWriter) writeOldest() {
	j := z.fifo[0]
	z.fifo = z.fifo[1:]
	<-j.done
	if z.err == nil && j.err != nil {
		z.err = j.err
	}
	if z.err == nil && j.stored {
		z.writeStored(j.in, j.crc)
	} else if z.err == nil {
		z.write(j.out)
	}
	releaseGzipJob(j)
}

func (z *nativeGzipWriter) write(b []byte) {
	if z.err != nil {
		return
	}
	if n, err := z.w.Write(b); err != nil {
		z.err = err
	} else if n != len(b) {
		z.err = io.ErrShortWrite
	}
}

// gzipHeader is the header of a single-member native stream and of a
// stored member (libdeflate level 0 writes the same): no name, zero
// modification time, XFL 4 (fastest) as ISA-L's levels are, OS unknown.
var gzipHeader = [10]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 255}

// storedBlock is the most a stored deflate block holds.
const storedBlock = 0xffff

// writeStored writes in as one gzip member of stored deflate blocks,
// straight from the block's input, with crc its CRC-32: the bytes
// libdeflate's level 0 makes (gzipHeader, blocks of up to 64 KiB - 1, the
// last one final, an empty input as one empty final block), checked by
// TestStoredMemberIsLibdeflates.
func (z *nativeGzipWriter) writeStored(in []byte, crc uint32) {
	z.write(gzipHeader[:])
	size := len(in)
	for first := true; first || len(in) > 0; first = false {
		n := min(len(in), storedBlock)
		var h [5]byte
		if n == len(in) {
			h[0] = 1 // BFINAL, BTYPE 00: stored
		}
		h[1], h[2] = byte(n), byte(n>>8)
		h[3], h[4] = ^h[1], ^h[2]
		z.write(h[:])
		z.write(in[:n])
		in = in[n:]
	}
	var t [8]byte
	put4(t[0:4], crc)
	put4(t[4:8], uint32(size))
	z.write(t[:])
}

// put4 writes v little-endian, as gzip wants.
func put4(p []byte, v uint32) {
	p[0], p[1], p[2], p[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}

// encoderPool keeps idle native encoders of one library and level: they
// hold C memory, so they are reused rather than left to the garbage
// collector, up to a bound.
type encoderPool struct {
	lib   string
	level int
	mu    sync.Mutex
	idle  []blockEncoder
}

var (
	poolsMu sync.Mutex
	pools   = map[[2]any]*encoderPool{}
)

// encoders returns the process's pool of lib's encoders at level.
func encoders(lib string, level int) *encoderPool {
	poolsMu.Lock()
	defer poolsMu.Unlock()
	k := [2]any{lib, level}
	if pools[k] == nil {
		pools[k] = &encoderPool{lib: lib, level: level}
	}
	return pools[k]
}

func (p *encoderPool) get() (blockEncoder, error) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		e := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return e, nil
	}
	p.mu.Unlock()
	return newBlockEncoder(p.lib, p.level)
}

// trim closes the idle encoders.
func (p *encoderPool) trim() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, e := range idle {
		closeEncoder(e)
	}
}

// trimEncoders closes the idle encoders of every pool: their C memory is
// given back once no layer is being compressed.
func trimEncoders() {
	poolsMu.Lock()
	all := make([]*encoderPool, 0, len(pools))
	for _, p := range pools {
		all = append(all, p)
	}
	poolsMu.Unlock()
	for _, p := range all {
		p.trim()
	}
}

func closeEncoder(e blockEncoder) {
	if c, ok := e.(interface{ Close() }); ok {
		c.Close()
	}
}

func (p *encoderPool) put(e blockEncoder) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.idle) < 2*runtime.GOMAXPROCS(0) {
		p.idle = append(p.idle, e)
		return
	}
	closeEncoder(e)
}
