package cache

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// countingWriter records the size of each write it gets.
type countingWriter struct {
	bytes.Buffer
	writes []int
	fail   error
	short  bool // accept half of each write without an error
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.fail != nil {
		return 0, c.fail
	}
	if c.short {
		p = p[:len(p)/2]
	}
	c.writes = append(c.writes, len(p))
	return c.Buffer.Write(p)
}

// TestBlockWriter: small writes reach the underlying writer in full
// buffers, a write larger than an empty buffer goes straight through,
// Flush writes the rest, the bytes are unchanged, and a failed write is
// returned by later ones and by Flush.
func TestBlockWriter(t *testing.T) {
	var dst countingWriter
	bw := newBlockWriter(&dst)
	defer bw.release()
	var want bytes.Buffer
	small := bytes.Repeat([]byte("0123456789abcdef"), 700) // 11,200 bytes
	for want.Len() < tarBuf+len(small) {
		if _, err := bw.Write(small); err != nil {
			t.Fatal(err)
		}
		want.Write(small)
	}
	if len(dst.writes) != 1 || dst.writes[0] != tarBuf {
		t.Fatalf("small writes reached the writer as %v, want one write of %d", dst.writes, tarBuf)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte{7}, 2*tarBuf+5)
	if n, err := bw.Write(big); err != nil || n != len(big) {
		t.Fatalf("large write: %d, %v", n, err)
	}
	want.Write(big)
	if last := dst.writes[len(dst.writes)-1]; last != len(big) {
		t.Errorf("a large write into an empty buffer reached the writer as %d bytes, want %d at once", last, len(big))
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dst.Bytes(), want.Bytes()) {
		t.Fatal("bytes changed on the way through")
	}

	boom := errors.New("boom")
	dst.fail = boom
	if _, err := bw.Write(big); !errors.Is(err, boom) {
		t.Fatalf("write to a failing writer: %v, want %v", err, boom)
	}
	if _, err := bw.Write(small); !errors.Is(err, boom) {
		t.Errorf("write after a failure: %v, want %v", err, boom)
	}
	if err := bw.Flush(); !errors.Is(err, boom) {
		t.Errorf("Flush after a failure: %v, want %v", err, boom)
	}
}

// TestBlockWriterShortWrite: a writer that takes less than it is given
// without an error makes the block writer fail with io.ErrShortWrite,
// whether the write went straight through or from the buffer, rather than
// loop or lose bytes silently.
func TestBlockWriterShortWrite(t *testing.T) {
	for _, direct := range []bool{true, false} {
		dst := countingWriter{short: true}
		bw := newBlockWriter(&dst)
		var err error
		if direct {
			_, err = bw.Write(make([]byte, tarBuf+1))
		} else {
			if _, err = bw.Write(make([]byte, 10)); err == nil {
				err = bw.Flush()
			}
		}
		bw.release()
		if !errors.Is(err, io.ErrShortWrite) {
			t.Errorf("direct=%v: %v, want io.ErrShortWrite", direct, err)
		}
	}
}
