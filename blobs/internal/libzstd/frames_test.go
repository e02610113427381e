package libzstd

import (
	"bytes"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// TestFrameEncoder: each frame of a reused FrameEncoder decompresses alone
// with klauspost's decoder, a frame's bytes do not depend on the frames
// before it (no history is carried), and streamed frames read back too.
func TestFrameEncoder(t *testing.T) {
	e, err := NewFrameEncoder(3)
	if !Available {
		if err == nil || !strings.Contains(err.Error(), "-tags native") {
			t.Fatalf("NewFrameEncoder without libzstd: %v, want an error naming -tags native", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	inputs := [][]byte{
		[]byte(strings.Repeat("header block ", 40)),
		bytes.Repeat([]byte("some file content\n"), 5000),
		{},
		[]byte("x"),
	}
	var first [][]byte
	for round := range 2 {
		for i, in := range inputs {
			frame, err := e.EncodeAll(in, []byte("prefix"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(frame, []byte("prefix")) {
				t.Fatal("EncodeAll does not append to dst")
			}
			frame = frame[len("prefix"):]
			if got, err := dec.DecodeAll(frame, nil); err != nil || !bytes.Equal(got, in) {
				t.Fatalf("frame %d does not decompress to its input: %v", i, err)
			}
			if round == 0 {
				first = append(first, bytes.Clone(frame))
			} else if !bytes.Equal(frame, first[i]) {
				t.Errorf("frame %d differs the second time: history leaks between frames", i)
			}
		}
	}
	var out bytes.Buffer
	for range 2 {
		w, err := e.Stream(&out)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range inputs {
			if _, err := w.Write(in); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	want := bytes.Repeat(bytes.Join(inputs, nil), 2)
	if got, err := dec.DecodeAll(out.Bytes(), nil); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("streamed frames do not decompress to their input: %v", err)
	}
}
