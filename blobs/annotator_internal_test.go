package blobs

import (
	"bytes"
	"io"
	"testing"
)

type annotatingWriter struct {
	io.Writer
	closed bool
}

func (a *annotatingWriter) Close() error { a.closed = true; return nil }

func (a *annotatingWriter) Annotations() map[string]string {
	if !a.closed {
		return nil
	}
	return map[string]string{"example.com/toc": "1"}
}

// TestCompressorAnnotations: the hook finds a compressor's annotations
// through NewWriter's in-flight wrapper, and a plain compressor has none.
func TestCompressorAnnotations(t *testing.T) {
	aw := &annotatingWriter{Writer: &bytes.Buffer{}}
	zw := track(aw)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if got := compressorAnnotations(zw); got["example.com/toc"] != "1" || len(got) != 1 {
		t.Errorf("annotations through the tracking wrapper = %v, want example.com/toc=1", got)
	}
	plain, err := Compression{Type: Gzip}.NewWriter(&bytes.Buffer{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if got := compressorAnnotations(plain); got != nil {
		t.Errorf("gzip compressor has annotations %v", got)
	}
}
