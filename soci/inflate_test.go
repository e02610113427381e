package soci

import (
	"bytes"
	"compress/flate"
	"errors"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// inflateRaw decodes one raw deflate stream with lade's inflater.
func inflateRaw(data []byte) ([]byte, error) {
	var out bytes.Buffer
	br := newBitReader(bytes.NewReader(data), func([]byte) {})
	f := newInflater(br, func(p []byte) error { out.Write(p); return nil }, func(blockStart) error { return nil })
	err := f.member()
	if err == nil {
		err = f.flush()
	}
	return out.Bytes(), err
}

// sameAsFlate checks lade's inflater against compress/flate on one input:
// both fail or both give the same bytes; when both fail, what each gave
// before is a prefix of the other.
func sameAsFlate(t testing.TB, data []byte) {
	t.Helper()
	want, werr := io.ReadAll(flate.NewReader(bytes.NewReader(data)))
	got, gerr := inflateRaw(data)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("compress/flate: %d bytes, %v; lade: %d bytes, %v (input %x)", len(want), werr, len(got), gerr, data[:min(len(data), 64)])
	}
	if werr == nil && !bytes.Equal(got, want) {
		t.Fatalf("lade inflates %d bytes, compress/flate %d, differing", len(got), len(want))
	}
	if werr != nil && !bytes.HasPrefix(got, want) && !bytes.HasPrefix(want, got) {
		t.Fatalf("before failing, lade gave %d bytes, compress/flate %d, differing", len(got), len(want))
	}
	if gerr != nil && !errors.Is(gerr, errCorrupt) && !errors.Is(gerr, io.ErrUnexpectedEOF) {
		t.Fatalf("lade's error %v is neither corrupt nor truncated", gerr)
	}
}

// testCorpus is random, repetitive and real data (this package's and Go's
// sources).
func testCorpus(t testing.TB) [][]byte {
	rng := rand.New(rand.NewSource(1))
	random := make([]byte, 300<<10)
	rng.Read(random)
	var text bytes.Buffer
	files, _ := filepath.Glob(filepath.Join(runtime.GOROOT(), "src", "compress", "*", "*.go"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		text.Write(b)
	}
	if text.Len() < 100<<10 {
		t.Fatalf("only %d bytes of Go source found", text.Len())
	}
	mixed := append(append(bytes.Repeat([]byte("ab"), 40000), random[:70000]...), text.Bytes()[:200000]...)
	return [][]byte{nil, {'x'}, random, text.Bytes(), bytes.Repeat([]byte{0}, 1<<20), mixed}
}

// TestInflateMatchesFlate: every level of compress/flate (stored, Huffman
// only, fixed and dynamic codes), with sync flushes, inflates to the input.
func TestInflateMatchesFlate(t *testing.T) {
	for _, in := range testCorpus(t) {
		for level := -2; level <= 9; level++ {
			var c bytes.Buffer
			zw, _ := flate.NewWriter(&c, level)
			half := len(in) / 2
			zw.Write(in[:half])
			zw.Flush()
			zw.Write(in[half:])
			zw.Close()
			got, err := inflateRaw(c.Bytes())
			if err != nil || !bytes.Equal(got, in) {
				t.Fatalf("level %d, %d bytes: inflated %d bytes, %v", level, len(in), len(got), err)
			}
		}
	}
}

// TestInflateCorrupt: truncated and bit-flipped streams fail where
// compress/flate fails, and inflate alike where it does not.
func TestInflateCorrupt(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	for _, in := range testCorpus(t)[2:] {
		for _, level := range []int{0, 1, 6, 9, -2} {
			var c bytes.Buffer
			zw, _ := flate.NewWriter(&c, level)
			zw.Write(in[:min(len(in), 64<<10)])
			zw.Close()
			good := c.Bytes()
			for i := 0; i < 40; i++ {
				bad := append([]byte(nil), good...)
				switch i % 3 {
				case 0:
					bad = bad[:rng.Intn(len(bad))]
				case 1:
					bad[rng.Intn(len(bad))] ^= 1 << rng.Intn(8)
				default:
					p := rng.Intn(len(bad))
					rng.Read(bad[p:min(len(bad), p+8)])
				}
				sameAsFlate(t, bad)
			}
		}
	}
	for i := 0; i < 3000; i++ { // random bytes: mostly invalid headers and codes
		b := make([]byte, 1+rng.Intn(200))
		rng.Read(b)
		sameAsFlate(t, b)
	}
}

// FuzzInflate compares lade's inflater with compress/flate on any input.
func FuzzInflate(f *testing.F) {
	for _, level := range []int{0, 1, 9, -2} {
		var c bytes.Buffer
		zw, _ := flate.NewWriter(&c, level)
		zw.Write([]byte("hello hello hello, fuzz fuzz fuzz"))
		zw.Close()
		f.Add(c.Bytes())
	}
	f.Fuzz(func(t *testing.T, data []byte) { sameAsFlate(t, data) })
}

// BenchmarkInflate compares lade's inflater with compress/flate on Go's
// compress sources (text) repeated to 8 MiB, level 6.
func BenchmarkInflate(b *testing.B) {
	text := testCorpus(b)[3]
	in := bytes.Repeat(text, 8<<20/len(text)+1)[:8<<20]
	var c bytes.Buffer
	zw, _ := flate.NewWriter(&c, 6)
	zw.Write(in)
	zw.Close()
	b.Run("compress-flate", func(b *testing.B) {
		b.SetBytes(int64(len(in)))
		for b.Loop() {
			io.Copy(io.Discard, flate.NewReader(bytes.NewReader(c.Bytes())))
		}
	})
	b.Run("lade", func(b *testing.B) {
		b.SetBytes(int64(len(in)))
		for b.Loop() {
			br := newBitReader(bytes.NewReader(c.Bytes()), func([]byte) {})
			f := newInflater(br, func([]byte) error { return nil }, func(blockStart) error { return nil })
			if err := f.member(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
