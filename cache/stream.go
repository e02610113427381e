package cache

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"
)

// streamFunc writes a stream to w. It must return when ctx is done or when a
// write to w fails.
type streamFunc func(ctx context.Context, w io.Writer) error

// pipeStream is the reading end of a stream produced by a goroutine.
type pipeStream struct {
	pr *io.PipeReader
	// ctxErr is the producer context's Err: once it is done, Read fails
	// even when the producer finished first.
	ctxErr func() error
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// newPipeStream runs fn in a goroutine writing into an io.Pipe and returns
// the reading end. fn's error (nil at the end of the stream) is what Read
// returns after the last byte. Once ctx is done, Read returns its error.
// Close stops fn (its context is cancelled and its writes fail) and waits for
// the goroutine to return, so no goroutine outlives Close.
func newPipeStream(ctx context.Context, fn streamFunc) io.ReadCloser {
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	// A cancelled context unblocks a writer waiting for a reader; the first
	// CloseWithError wins, so the reader sees ctx's error.
	stop := context.AfterFunc(ctx, func() { _ = pw.CloseWithError(ctx.Err()) })
	s := &pipeStream{pr: pr, ctxErr: ctx.Err, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		err := fn(ctx, pw)
		stop()
		_ = pw.CloseWithError(err)
	}()
	return s
}

// Read reads the stream; it returns the producer's error after the data,
// and the context's error once the context is done.
func (s *pipeStream) Read(p []byte) (int, error) {
	if err := s.ctxErr(); err != nil {
		return 0, err
	}
	return s.pr.Read(p)
}

// WriteTo copies the stream to w (io.Copy uses it) with a large buffer
// from tarBufs: a writer on the other side of the pipe hands over up to
// tarBuf bytes per switch between goroutines, where io.Copy's 32 KiB
// would take eight. It returns what Read would: nil at the end of the
// stream, else the producer's or the context's error.
func (s *pipeStream) WriteTo(w io.Writer) (int64, error) {
	buf := tarBufs.Get()
	defer tarBufs.Put(buf)
	var n int64
	for {
		m, err := s.Read(buf)
		if m > 0 {
			k, werr := w.Write(buf[:m])
			n += int64(k)
			if werr != nil {
				return n, werr
			}
		}
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// Close stops the producer and waits for it. It is idempotent and returns
// nil: closing before EOF is not an error.
func (s *pipeStream) Close() error {
	s.once.Do(func() {
		s.cancel()
		_ = s.pr.Close()
		<-s.done
	})
	return nil
}

// ctxReader fails reads once its context is done, so long copies stop
// promptly when a diff is abandoned.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

// Read reads from the underlying reader unless the context is done.
func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

var copyBufPool = sync.Pool{New: func() any {
	b := make([]byte, 32*1024)
	return &b
}}

// copyBuffered copies src to dst with a pooled buffer, checking ctx between
// chunks.
func copyBuffered(ctx context.Context, dst io.Writer, src io.Reader) (int64, error) {
	buf := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(buf)
	return io.CopyBuffer(onlyWriter{dst}, ctxReader{ctx: ctx, r: src}, *buf)
}

// onlyWriter hides ReadFrom so io.CopyBuffer uses the given buffer.
type onlyWriter struct{ w io.Writer }

// Write writes to the underlying writer.
func (o onlyWriter) Write(p []byte) (int, error) { return o.w.Write(p) }

// cloneTime copies *t so a goroutine does not share the caller's value.
func cloneTime(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	c := *t
	return &c
}
