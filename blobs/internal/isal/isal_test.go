package isal

import (
	"bytes"
	"compress/flate"
	"io"
	"math/rand"
	"strings"
	"testing"
)

// TestBlocks: blocks deflated with the previous block's tail as
// dictionary, sync-flushed and the last one closed, concatenate into one
// deflate stream that Go's compress/flate reads back, at every level.
func TestBlocks(t *testing.T) {
	if !Available {
		if _, err := NewEncoder(1); err == nil || !strings.Contains(err.Error(), "-tags native") {
			t.Fatalf("NewEncoder without ISA-L: %v, want an error naming -tags native", err)
		}
		return
	}
	if !strings.HasPrefix(Version(), "isal-2.") {
		t.Errorf("Version() = %q", Version())
	}
	rng := rand.New(rand.NewSource(5))
	data := make([]byte, 3<<20+333)
	for i := range data {
		if i%(1<<20) < 100<<10 {
			data[i] = byte(rng.Intn(256))
		} else {
			data[i] = "isal deflate\n"[rng.Intn(13)]
		}
	}
	for level := 0; level <= MaxLevel; level++ {
		e, err := NewEncoder(level)
		if err != nil {
			t.Fatal(err)
		}
		var stream, dict []byte
		for off := 0; off < len(data); off += 1 << 20 {
			end := min(off+1<<20, len(data))
			if stream, err = e.Block(stream, dict, data[off:end], end == len(data)); err != nil {
				t.Fatal(err)
			}
			dict = data[max(0, end-HistSize):end]
		}
		e.Close()
		got, err := io.ReadAll(flate.NewReader(bytes.NewReader(stream)))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("level %d: read back %d bytes, %v", level, len(got), err)
		}
	}
	if _, err := NewEncoder(MaxLevel + 1); err == nil {
		t.Error("a level above MaxLevel was accepted")
	}
}
