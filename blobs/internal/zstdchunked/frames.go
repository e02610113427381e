package zstdchunked

import (
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
)

// frameBuffer is the largest frame compressed in one EncodeAll call; a
// longer frame is streamed through the encoder. Most frames (tar headers,
// chunks of 64 KiB on average) are short: EncodeAll avoids the stream's
// per-frame setup. Which path a frame takes depends on its length only,
// so the bytes do not depend on how the tar was written.
const frameBuffer = 256 << 10

// frameWriter writes a sequence of independent zstd frames into out and
// counts the bytes written, which are the frame offsets the TOC records.
type frameWriter struct {
	out       io.Writer
	n         int64 // bytes written to out
	enc       *zstd.Encoder
	buf       []byte // the frame's data while it is short
	enc1      []byte // EncodeAll's output buffer
	streaming bool   // the frame outgrew buf and goes through enc
	err       error
}

func newFrameWriter(out io.Writer, level int) (*frameWriter, error) {
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)),
		zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, fmt.Errorf("zstd encoder: %w", err)
	}
	f := &frameWriter{enc: enc, buf: make([]byte, 0, frameBuffer)}
	f.out = writerFunc(func(p []byte) (int, error) {
		n, err := out.Write(p)
		f.n += int64(n)
		return n, err
	})
	return f, nil
}

// write adds p to the current frame.
func (f *frameWriter) write(p []byte) {
	if f.err != nil || len(p) == 0 {
		return
	}
	if f.streaming {
		_, f.err = f.enc.Write(p)
		return
	}
	if len(f.buf)+len(p) <= cap(f.buf) {
		f.buf = append(f.buf, p...)
		return
	}
	f.streaming = true
	f.enc.Reset(f.out)
	if _, f.err = f.enc.Write(f.buf); f.err == nil {
		_, f.err = f.enc.Write(p)
	}
	f.buf = f.buf[:0]
}

// end closes the current frame; the next write starts a new one. An
// empty frame writes nothing.
func (f *frameWriter) end() {
	if f.err != nil {
		return
	}
	if f.streaming {
		f.streaming = false
		f.err = f.enc.Close()
		return
	}
	if len(f.buf) == 0 {
		return
	}
	f.enc1 = f.enc.EncodeAll(f.buf, f.enc1[:0])
	f.buf = f.buf[:0]
	_, f.err = f.out.Write(f.enc1)
}

// offset ends the current frame and returns where the next one starts.
func (f *frameWriter) offset() int64 {
	f.end()
	return f.n
}

// compress returns data as one zstd frame, for the TOC and the tar-split.
func (f *frameWriter) compress(data []byte) []byte {
	return f.enc.EncodeAll(data, nil)
}

type writerFunc func([]byte) (int, error)

func (w writerFunc) Write(p []byte) (int, error) { return w(p) }
