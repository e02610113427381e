//go:build native && cgo

package blobs

import (
	"bytes"
	"testing"

	"github.com/lade-build/lade/blobs/internal/isal"
	"github.com/lade-build/lade/blobs/internal/libdeflate"
)

// TestGzipOutCap: a block's mapped output buffer holds every native
// encoder's worst case for a full block, so no block's output moves to
// the Go heap.
func TestGzipOutCap(t *testing.T) {
	if b := isal.Bound(gzipBlock); b > gzipOutCap {
		t.Errorf("ISA-L's bound %d is over gzipOutCap %d", b, gzipOutCap)
	}
	for level := 0; level <= libdeflate.MaxLevel; level++ {
		c, err := libdeflate.NewCompressor(level)
		if err != nil {
			t.Fatal(err)
		}
		if b := c.GzipBound(gzipBlock); b > gzipOutCap {
			t.Errorf("libdeflate level %d: bound %d is over gzipOutCap %d", level, b, gzipOutCap)
		}
		c.Close()
	}
}

// TestGzipJobsTrimmed: once the last layer in flight is closed, no block
// buffer and no encoder is kept, and the next stream's bytes are the
// same as before.
func TestGzipJobsTrimmed(t *testing.T) {
	data := mixedData(3<<20+99, 11)
	for _, level := range []int{1, 6} {
		want := gzipWith(t, data, level, 1<<16, nil)
		gzipJobs.mu.Lock()
		idle := len(gzipJobs.idle)
		gzipJobs.mu.Unlock()
		if idle != 0 {
			t.Errorf("level %d: %d block buffers kept after the last stream closed", level, idle)
		}
		lib, nl := gzipNative(level)
		p := encoders(lib, nl)
		p.mu.Lock()
		encs := len(p.idle)
		p.mu.Unlock()
		if encs != 0 {
			t.Errorf("level %d: %d %s encoders kept after the last stream closed", level, encs, lib)
		}
		if got := gzipWith(t, data, level, 1<<20, nil); !bytes.Equal(got, want) {
			t.Errorf("level %d: the bytes changed with new buffers", level)
		}
	}
}
