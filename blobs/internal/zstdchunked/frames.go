package zstdchunked

import (
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/lade-build/lade/blobs/internal/libzstd"
)

// frameBuffer is the largest frame compressed in one EncodeAll call; a
// longer frame is streamed through the encoder. Most frames (tar headers,
// chunks of 64 KiB on average) are short: EncodeAll avoids the stream's
// per-frame setup. Which path a frame takes depends on its length only,
// so the bytes do not depend on how the tar was written.
const frameBuffer = 256 << 10

// frameCodec compresses independent zstd frames: whole ones from a
// buffer, long ones as a stream.
type frameCodec interface {
	encodeAll(src, dst []byte) ([]byte, error)
	stream(w io.Writer) (io.WriteCloser, error)
	close()
}

// goCodec is klauspost's encoder. Its frames have no content checksum:
// the TOC's sha256 of every file and chunk is what zstd:chunked readers
// check, and containerd checks the blob's digest.
type goCodec struct{ enc *zstd.Encoder }

func newGoCodec(level int) (goCodec, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)),
		zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(false))
	if err != nil {
		return goCodec{}, fmt.Errorf("zstd encoder: %w", err)
	}
	return goCodec{enc}, nil
}

func (c goCodec) encodeAll(src, dst []byte) ([]byte, error) { return c.enc.EncodeAll(src, dst), nil }

func (c goCodec) stream(w io.Writer) (io.WriteCloser, error) {
	c.enc.Reset(w)
	return c.enc, nil
}

func (goCodec) close() {}

// nativeCodec is libzstd with one reused context, which sizes its tables
// to each frame: much less setup per short frame than klauspost's.
type nativeCodec struct{ enc *libzstd.FrameEncoder }

func (c nativeCodec) encodeAll(src, dst []byte) ([]byte, error) { return c.enc.EncodeAll(src, dst) }

func (c nativeCodec) stream(w io.Writer) (io.WriteCloser, error) { return c.enc.Stream(w) }

func (c nativeCodec) close() { c.enc.Close() }

// frameWriter writes a sequence of independent zstd frames into out and
// counts the bytes written, which are the frame offsets the TOC records.
type frameWriter struct {
	out    io.Writer
	n      int64 // bytes written to out
	codec  frameCodec
	buf    []byte         // the frame's data while it is short
	enc1   []byte         // EncodeAll's output buffer
	stream io.WriteCloser // the frame outgrew buf and goes through it
	err    error
}

func newFrameWriter(out io.Writer, level int, native bool) (*frameWriter, error) {
	var codec frameCodec
	if native {
		enc, err := libzstd.NewFrameEncoder(level)
		if err != nil {
			return nil, err
		}
		codec = nativeCodec{enc}
	} else {
		c, err := newGoCodec(level)
		if err != nil {
			return nil, err
		}
		codec = c
	}
	f := &frameWriter{codec: codec, buf: make([]byte, 0, frameBuffer)}
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
	if f.stream != nil {
		_, f.err = f.stream.Write(p)
		return
	}
	if len(f.buf)+len(p) <= cap(f.buf) {
		f.buf = append(f.buf, p...)
		return
	}
	if f.stream, f.err = f.codec.stream(f.out); f.err != nil {
		return
	}
	if _, f.err = f.stream.Write(f.buf); f.err == nil {
		_, f.err = f.stream.Write(p)
	}
	f.buf = f.buf[:0]
}

// end closes the current frame; the next write starts a new one. An
// empty frame writes nothing.
func (f *frameWriter) end() {
	if f.err != nil {
		return
	}
	if f.stream != nil {
		f.err = f.stream.Close()
		f.stream = nil
		return
	}
	if len(f.buf) == 0 {
		return
	}
	f.enc1, f.err = f.codec.encodeAll(f.buf, f.enc1[:0])
	f.buf = f.buf[:0]
	if f.err == nil {
		_, f.err = f.out.Write(f.enc1)
	}
}

// offset ends the current frame and returns where the next one starts.
func (f *frameWriter) offset() int64 {
	f.end()
	return f.n
}

// compress returns data as one zstd frame, for the TOC.
func (f *frameWriter) compress(data []byte) ([]byte, error) {
	return f.codec.encodeAll(data, nil)
}

type writerFunc func([]byte) (int, error)

func (w writerFunc) Write(p []byte) (int, error) { return w(p) }
