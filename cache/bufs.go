package cache

import (
	"io"
	"runtime"
	"time"

	"github.com/lade-build/lade/internal/offheap"
)

// tarBuf is the size of each buffer of a diff's tar pipeline: the
// read-ahead ring (readAheadRing), the buffer the tar is written through
// (writeChanges), the one large files are read with (copyFile) and the one
// the stream is copied out with (pipeStream.WriteTo).
const tarBuf = 256 << 10

// tarBufs holds those buffers outside the Go heap. A layer being written
// holds up to four; on the heap, in sync.Pools, the collector counted them
// live, so each raised the heap goal by as much again while layers were
// written (docs/performance.md, "Peak RSS on a RUN workload"). The pool
// keeps up to four per core waiting and unmaps them a second after the
// last diff gave them back.
var tarBufs = offheap.NewPool(tarBuf, 4*runtime.GOMAXPROCS(0), time.Second)

// blockWriter buffers writes to w in a buffer from tarBufs, as a
// bufio.Writer of tarBuf bytes would (a write larger than the free space
// of an empty buffer goes to w directly), so the tar's many small writes
// reach w in a few large ones. Its owner must release it.
type blockWriter struct {
	w   io.Writer
	buf []byte
	n   int
	err error
}

func newBlockWriter(w io.Writer) *blockWriter {
	return &blockWriter{w: w, buf: tarBufs.Get()}
}

// Write implements io.Writer.
func (b *blockWriter) Write(p []byte) (int, error) {
	nn := 0
	for len(p) > len(b.buf)-b.n && b.err == nil {
		var n int
		if b.n == 0 {
			n, b.err = b.w.Write(p)
			if b.err == nil && n < len(p) {
				b.err = io.ErrShortWrite // a writer that breaks io.Writer's contract
			}
		} else {
			n = copy(b.buf[b.n:], p)
			b.n += n
			b.flush()
		}
		nn += n
		p = p[n:]
	}
	if b.err != nil {
		return nn, b.err
	}
	n := copy(b.buf[b.n:], p)
	b.n += n
	return nn + n, nil
}

// Flush writes the buffered bytes to w.
func (b *blockWriter) Flush() error {
	b.flush()
	return b.err
}

func (b *blockWriter) flush() {
	if b.err != nil || b.n == 0 {
		return
	}
	n, err := b.w.Write(b.buf[:b.n])
	if err == nil && n < b.n {
		err = io.ErrShortWrite
	}
	b.n, b.err = 0, err
}

// release gives the buffer back, dropping what was not flushed; the
// writer must not be used afterwards.
func (b *blockWriter) release() {
	tarBufs.Put(b.buf)
	b.buf = nil
}
