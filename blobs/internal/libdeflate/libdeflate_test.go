package libdeflate

import (
	"bytes"
	"compress/gzip"
	"io"
	"strings"
	"testing"
)

// TestMembers: gzip members of several buffers concatenate into a file
// Go's compress/gzip reads back as one stream, at levels 0 to MaxLevel.
func TestMembers(t *testing.T) {
	if !Available {
		if _, err := NewCompressor(6); err == nil || !strings.Contains(err.Error(), "-tags native") {
			t.Fatalf("NewCompressor without libdeflate: %v, want an error naming -tags native", err)
		}
		return
	}
	if !strings.HasPrefix(Version(), "libdeflate-1.") {
		t.Errorf("Version() = %q", Version())
	}
	parts := [][]byte{bytes.Repeat([]byte("libdeflate "), 50000), nil, []byte("x")}
	for _, level := range []int{0, 1, 5, 6, MaxLevel} {
		c, err := NewCompressor(level)
		if err != nil {
			t.Fatal(err)
		}
		var file []byte
		for _, p := range parts {
			if file, err = c.Gzip(file, p); err != nil {
				t.Fatal(err)
			}
		}
		c.Close()
		zr, err := gzip.NewReader(bytes.NewReader(file))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(zr)
		if err != nil || !bytes.Equal(got, bytes.Join(parts, nil)) {
			t.Errorf("level %d: read back %d bytes, %v", level, len(got), err)
		}
	}
	if _, err := NewCompressor(MaxLevel + 1); err == nil {
		t.Error("a level above MaxLevel was accepted")
	}
}
