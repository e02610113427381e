//go:build native && cgo

package blobs

import (
	"bytes"
	"io"
	"runtime"
	"sync"
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
		idle, outs, mapped := len(gzipJobs.idle), len(gzipJobs.outs), gzipJobs.mapped
		gzipJobs.mu.Unlock()
		if idle != 0 || outs != 0 || mapped != 0 {
			t.Errorf("level %d: %d block buffers, %d output buffers kept (%d mapped) after the last stream closed", level, idle, outs, mapped)
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

// TestEncodingBoundedByCores: streams compressing at once, more than the
// cores and each encoding its blocks on its own goroutine, never encode
// more blocks at a time than GOMAXPROCS (so never hold more native
// encoders), and write the bytes one stream alone writes.
func TestEncodingBoundedByCores(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	data := mixedData(6<<20+5, 12)
	for _, level := range []int{1, 6} {
		want := gzipWith(t, data, level, 1<<16, nil)
		encoding.mu.Lock()
		encoding.max = 0
		encoding.mu.Unlock()
		var wg sync.WaitGroup
		got := make([][]byte, 5)
		for i := range got {
			wg.Go(func() { got[i] = gzipWith(t, data, level, 1<<16, nil) })
		}
		wg.Wait()
		encoding.mu.Lock()
		most := encoding.max
		encoding.mu.Unlock()
		if most > 2 || most < 1 {
			t.Errorf("level %d: %d blocks encoded at once by 5 streams on 2 cores, want 1 or 2", level, most)
		}
		for i, g := range got {
			if !bytes.Equal(g, want) {
				t.Errorf("level %d: stream %d's bytes differ from one stream's alone", level, i)
			}
		}
	}
}

// TestOutputBuffersBorrowed: a block being filled holds its input buffer
// only; an output buffer is mapped when a block is encoded, and streams
// that are filling their blocks hold none.
func TestOutputBuffersBorrowed(t *testing.T) {
	data := mixedData(gzipBlock/2, 13)
	level := 6
	var ws []io.WriteCloser
	for range 3 {
		zw, err := Compression{Type: Gzip, Level: &level}.NewWriter(io.Discard, 8)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := zw.Write(data); err != nil {
			t.Fatal(err)
		}
		ws = append(ws, zw)
	}
	gzipJobs.mu.Lock()
	mapped := gzipJobs.mapped
	gzipJobs.mu.Unlock()
	if mapped != 0 {
		t.Errorf("%d output buffers mapped by 3 streams filling their first block, want 0", mapped)
	}
	for _, zw := range ws {
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
