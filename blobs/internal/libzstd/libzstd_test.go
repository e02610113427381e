package libzstd

import (
	"bytes"
	"io"
	"math/rand"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func compress(t *testing.T, data []byte, level, chunk int) []byte {
	t.Helper()
	var buf bytes.Buffer
	z, err := NewWriter(&buf, level)
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(data); off += chunk {
		if _, err := z.Write(data[off:min(off+chunk, len(data))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestRoundTripAndChunking: klauspost's decoder reads libzstd's frames
// back (checksum included), and the bytes do not depend on how the input
// was split into writes.
func TestRoundTripAndChunking(t *testing.T) {
	if !Available {
		if _, err := NewWriter(io.Discard, 3); err == nil || !strings.Contains(err.Error(), "-tags native") {
			t.Fatalf("NewWriter without libzstd: %v, want an error naming -tags native", err)
		}
		return
	}
	if !strings.HasPrefix(Version(), "libzstd-1.") {
		t.Errorf("Version() = %q", Version())
	}
	rng := rand.New(rand.NewSource(3))
	data := make([]byte, 3<<20+77)
	for i := range data {
		if i%(1<<20) < 200<<10 {
			data[i] = byte(rng.Intn(256))
		} else {
			data[i] = byte('a' + rng.Intn(4))
		}
	}
	for _, level := range []int{1, 3, 9} {
		want := compress(t, data, level, len(data))
		for _, chunk := range []int{1 << 20, 70001, 513} {
			if got := compress(t, data, level, chunk); !bytes.Equal(got, want) {
				t.Errorf("level %d: writes of %d bytes changed the output", level, chunk)
			}
		}
		d, err := zstd.NewReader(bytes.NewReader(want))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(d)
		d.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("level %d: round trip: %v", level, err)
		}
	}
	empty := compress(t, nil, 3, 1)
	if d, err := zstd.NewReader(bytes.NewReader(empty)); err != nil {
		t.Fatal(err)
	} else if got, err := io.ReadAll(d); err != nil || len(got) != 0 || len(empty) == 0 {
		t.Errorf("empty input: %d bytes of frame, read back %d bytes, %v", len(empty), len(got), err)
	}
	if _, err := NewWriter(io.Discard, 0); err == nil {
		t.Error("level 0 accepted")
	}
}
