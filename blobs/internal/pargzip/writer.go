package pargzip

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/flate"
)

// Writer is one gzip stream compressed on a Pool. Like pgzip's writer it
// is not safe for concurrent use; Close must be called to finish the
// stream and give its slots back (a Writer dropped without Close gives
// them back when the garbage collector finds it).
type Writer struct {
	*stream
}

// stream is a Writer's state; the output goroutine holds it, never the
// Writer, so an abandoned Writer can be found and cleaned up.
type stream struct {
	p      *Pool
	w      io.Writer
	level  int
	crc    uint32
	size   int64
	cur    *slot
	tail   []byte
	queue  chan *slot    // submitted blocks in stream order
	tokens chan struct{} // slots this stream holds
	out    chan struct{} // closed when the output goroutine ends

	started bool // header written, output goroutine running
	closed  atomic.Bool

	onBlock func(Boundary) // see OnBlock; called by the output goroutine
	outN    int64          // compressed bytes written (header included)
	inN     int64          // uncompressed bytes written, block by block

	errMu sync.Mutex
	err   error
}

// NewWriter returns a gzip writer into w at level (0 to 9, as
// compress/flate) on p. Its output is byte for byte pgzip's with
// SetConcurrency(BlockSize, n) for any n.
func (p *Pool) NewWriter(w io.Writer, level int) (*Writer, error) {
	if level < flate.NoCompression || level > flate.BestCompression {
		return nil, fmt.Errorf("gzip: invalid compression level %d: use 0 to 9", level)
	}
	st := &stream{
		p:      p,
		w:      w,
		level:  level,
		queue:  make(chan *slot, p.perWrite),
		tokens: make(chan struct{}, p.perWrite),
		out:    make(chan struct{}),
	}
	zw := &Writer{st}
	runtime.AddCleanup(zw, (*stream).abandon, st)
	return zw, nil
}

// WindowSize is the length of Boundary.Window: deflate's 32 KiB window.
const WindowSize = 32 << 10

// Boundary is the start of a block other than the first: the deflate
// stream is byte-aligned there (the previous block ended with a sync
// flush) and needs no more history than Window, so a reader can start
// inflating at Compressed with Window as its dictionary.
type Boundary struct {
	// Compressed is the block's offset in the gzip stream (header included).
	Compressed int64
	// Uncompressed is the block's offset in the uncompressed data.
	Uncompressed int64
	// Window is the WindowSize bytes of uncompressed data before the
	// block. It is valid only during the call.
	Window []byte
}

// OnBlock sets f to be called at each block boundary, in stream order, once
// the bytes before it were written to the underlying writer and before any
// byte after it is (so f sees the output's writes and its own calls in one
// order). f runs on the stream's output goroutine and must not block for
// long. OnBlock must be called before the first Write.
func (w *Writer) OnBlock(f func(Boundary)) {
	w.onBlock = f
}

// Write compresses p. As with pgzip, an error of the underlying writer may
// surface from a later Write or from Close.
func (s *stream) Write(p []byte) (int, error) {
	if s.closed.Load() {
		return 0, errors.New("gzip: write after close")
	}
	if err := s.error(); err != nil {
		return 0, err
	}
	if !s.started {
		if err := s.start(); err != nil {
			return 0, err
		}
	}
	for q := p; len(q) > 0; {
		if s.cur == nil {
			s.cur = s.get()
		}
		n := min(len(q), BlockSize-len(s.cur.in))
		s.crc = crc32.Update(s.crc, crc32.IEEETable, q[:n])
		s.cur.in = append(s.cur.in, q[:n]...)
		s.size += int64(n)
		q = q[n:]
		if len(s.cur.in) == BlockSize {
			s.submit(false)
			if err := s.error(); err != nil {
				return len(p) - len(q), err
			}
		}
	}
	return len(p), s.error()
}

// Close compresses what is buffered, waits for every block to be written
// and writes the gzip trailer. It does not close the underlying writer.
func (s *stream) Close() error {
	if s.closed.Swap(true) {
		return s.error()
	}
	if !s.started {
		_ = s.start() // an error is recorded and returned below
	}
	if s.error() == nil {
		if s.cur == nil {
			s.cur = s.get()
		}
		s.submit(true)
	} else if s.cur != nil {
		s.put(s.cur)
		s.cur = nil
	}
	close(s.queue)
	<-s.out
	if err := s.error(); err != nil {
		return err
	}
	var trailer [8]byte
	put4(trailer[0:4], s.crc)
	put4(trailer[4:8], uint32(s.size))
	if _, err := s.w.Write(trailer[:]); err != nil {
		s.fail(err)
		return err
	}
	return nil
}

// start writes pgzip's header (no name, comment or extra; the zero
// modification time as pgzip writes it) and starts the output goroutine.
func (s *stream) start() error {
	s.started = true
	hdr := [10]byte{0: 0x1f, 1: 0x8b, 2: 8, 9: 255}
	put4(hdr[4:8], uint32(time.Time{}.Unix()))
	switch s.level {
	case flate.BestCompression:
		hdr[8] = 2
	case flate.BestSpeed:
		hdr[8] = 4
	}
	s.outN = int64(len(hdr))
	go s.output()
	if _, err := s.w.Write(hdr[:]); err != nil {
		s.fail(err)
		return err
	}
	return nil
}

// get takes a slot for the next block, within the stream's share, with
// the previous block's tail as its dictionary.
func (s *stream) get() *slot {
	s.tokens <- struct{}{}
	c := s.p.acquire()
	if s.tail != nil {
		c.dict = append(c.dictB[:0], s.tail...)
	}
	return c
}

// put gives a slot back to the pool and the stream's share.
func (s *stream) put(c *slot) {
	s.p.release(c)
	<-s.tokens
}

// submit queues the current block for the workers and for the output
// goroutine, keeping its tail for the next block.
func (s *stream) submit(final bool) {
	c := s.cur
	s.cur = nil
	c.level, c.final = s.level, final
	if !final {
		// A non-final block is full, so longer than the tail.
		s.tail = append(s.tail[:0], c.in[len(c.in)-tailSize:]...)
	}
	s.queue <- c
	s.p.jobs <- c
}

// output writes compressed blocks in stream order as they are done; after
// an error it only gives their slots back.
func (s *stream) output() {
	defer close(s.out)
	for c := range s.queue {
		<-c.done
		if s.error() == nil {
			n, err := s.w.Write(c.out)
			if err == nil && n != len(c.out) {
				err = io.ErrShortWrite
			}
			if err != nil {
				s.fail(err)
			}
			s.boundary(c)
		}
		s.put(c)
	}
}

// boundary counts block c as written and reports the start of the next
// block to the OnBlock function: c is full, so it holds the window.
func (s *stream) boundary(c *slot) {
	s.outN += int64(len(c.out))
	s.inN += int64(len(c.in))
	if s.onBlock == nil || c.final || s.error() != nil {
		return
	}
	s.onBlock(Boundary{Compressed: s.outN, Uncompressed: s.inN, Window: c.in[len(c.in)-WindowSize:]})
}

// abandon finishes a stream whose Writer was dropped without Close, so
// its slots and goroutine are not lost.
func (s *stream) abandon() {
	if s.closed.Swap(true) {
		return
	}
	s.fail(errors.New("gzip: writer dropped without Close"))
	if s.cur != nil {
		s.put(s.cur)
	}
	if s.started {
		close(s.queue)
	}
}

func (s *stream) fail(err error) {
	s.errMu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.errMu.Unlock()
}

func (s *stream) error() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.err
}

// put4 writes v little-endian, as gzip wants.
func put4(p []byte, v uint32) {
	p[0], p[1], p[2], p[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}
