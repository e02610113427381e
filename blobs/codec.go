package blobs

import (
	"io"
	"runtime"
	"sync"
	"sync/atomic"
)

// Codec concurrency (issue #17). On a machine with few cores the export is
// CPU-bound, so what counts is CPU-seconds per layer byte: a codec that
// runs its stream on more goroutines while other layers already keep every
// core busy gains no wall time and pays for the hand-offs. Every writer
// NewWriter returns counts as one layer in flight until it is closed, and
// a native gzip stream encodes blocks on goroutines of their own only
// while fewer layers than cores are in flight. A zstd stream is different:
// its encoder is single-threaded, so a second goroutine only moves the
// encoding off the goroutine that makes and hashes the tar, for a copy
// and a hand-off per 256 KiB chunk; it takes one whenever the process has
// two cores, so that the encoding of the largest layer overlaps its own
// tar instead of waiting for the other layers to finish. Bytes never
// depend on these choices: the encoder is always a single-threaded one,
// fed the same bytes in the same order.

// inFlight counts the layers being compressed by writers of this process.
var inFlight atomic.Int64

// codecWorkers is the scheduling decision: the goroutines one layer's
// codec should use when active layers (this one included) are being
// compressed on procs cores, at most limit. A layer gets one goroutine,
// plus one for each core no other layer would use.
func codecWorkers(active, procs, limit int) int {
	free := procs - max(active, 1)
	return max(1, min(1+free, limit))
}

// currentWorkers is codecWorkers for the process now.
func currentWorkers(limit int) int {
	return codecWorkers(int(inFlight.Load()), runtime.GOMAXPROCS(0), limit)
}

// tracked counts a writer as a layer in flight until its first Close.
type tracked struct {
	io.WriteCloser
	once sync.Once
}

func track(w io.WriteCloser) *tracked {
	inFlight.Add(1)
	return &tracked{WriteCloser: w}
}

// Close closes the writer and ends its layer's count. The last layer in
// flight to end gives back the native gzip encoders' idle buffers and C
// memory (see gzipjobs.go), so the daemon keeps none between exports.
func (t *tracked) Close() error {
	err := t.WriteCloser.Close()
	t.once.Do(func() {
		if inFlight.Add(-1) == 0 {
			trimIdleGzipJobs()
			trimEncoders()
		}
	})
	return err
}

// zstdChunk is the size of the chunks a zstd stream hands to its second
// goroutine: large enough that hand-offs are rare (about 4,000 per GB),
// small enough that the three chunks each layer keeps cost little memory.
const zstdChunk = 256 << 10

// zstdWriter compresses with a single-threaded encoder (klauspost's or
// libzstd's, see codecselect.go), on a second goroutine fed chunks while
// decide returns 2 or more (the caller then only produces and hashes the
// tar), else on the caller's. Both encoders split blocks by byte count,
// not by Write calls, so the bytes are the same whichever way each chunk
// went.
type zstdWriter struct {
	enc    io.WriteCloser
	decide func() int

	buf     []byte         // the chunk being filled for the second goroutine
	queue   chan []byte    // chunks for the second goroutine; nil until started
	free    chan []byte    // empty chunks
	pending sync.WaitGroup // chunks queued and not yet encoded
	err     atomic.Pointer[error]
	closed  bool
}

func newZstdWriter(w io.Writer, level, limit int) (*zstdWriter, error) {
	enc, err := newZstdEncoder(w, level)
	if err != nil {
		return nil, err
	}
	return &zstdWriter{enc: enc, decide: func() int { return min(limit, runtime.GOMAXPROCS(0)) }}, nil
}

// Write implements io.Writer.
func (z *zstdWriter) Write(p []byte) (int, error) {
	if err := z.failed(); err != nil {
		return 0, err
	}
	if z.decide() < 2 {
		if err := z.drain(); err != nil {
			return 0, err
		}
		return z.enc.Write(p)
	}
	n := len(p)
	for len(p) > 0 {
		if z.buf == nil {
			z.buf = z.chunk()
		}
		c := copy(z.buf[len(z.buf):cap(z.buf)], p)
		z.buf, p = z.buf[:len(z.buf)+c], p[c:]
		if len(z.buf) == cap(z.buf) {
			z.send()
		}
	}
	return n, z.failed()
}

// chunk returns an empty chunk, starting the second goroutine on first use.
// Three chunks circulate: one filling, one queued, one being encoded.
func (z *zstdWriter) chunk() []byte {
	if z.queue == nil {
		z.queue, z.free = make(chan []byte, 1), make(chan []byte, 3)
		for range 3 {
			z.free <- make([]byte, 0, zstdChunk)
		}
		go z.encodeQueued()
	}
	return <-z.free
}

// send queues the chunk being filled.
func (z *zstdWriter) send() {
	z.pending.Add(1)
	z.queue <- z.buf
	z.buf = nil
}

// encodeQueued runs on the second goroutine until the queue is closed.
func (z *zstdWriter) encodeQueued() {
	for b := range z.queue {
		if z.failed() == nil {
			if _, err := z.enc.Write(b); err != nil {
				z.err.CompareAndSwap(nil, &err)
			}
		}
		z.free <- b[:0]
		z.pending.Done()
	}
}

// drain queues the partly filled chunk and waits until every queued chunk
// is encoded, so that the caller may use the encoder.
func (z *zstdWriter) drain() error {
	if z.buf != nil && len(z.buf) > 0 {
		z.send()
	}
	z.pending.Wait()
	return z.failed()
}

func (z *zstdWriter) failed() error {
	if e := z.err.Load(); e != nil {
		return *e
	}
	return nil
}

// Close encodes what is queued, stops the second goroutine and ends the
// zstd frame. It does not close the underlying writer.
func (z *zstdWriter) Close() error {
	if z.closed {
		return z.failed()
	}
	z.closed = true
	err := z.drain()
	if z.queue != nil {
		close(z.queue)
	}
	if cerr := z.enc.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return err
}
