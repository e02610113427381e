//go:build native && cgo

package blobs

import (
	"bytes"
	"hash/crc32"
	"io"
	"math/rand"
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

// TestOutputBuffersSettle: an encoded block gives its output buffer back
// before it is written, so streams whose encoded blocks wait to be written
// hold no output buffer, and no more are mapped than blocks can be encoded
// at once (GOMAXPROCS); the bytes are those of one stream alone.
func TestOutputBuffersSettle(t *testing.T) {
	trimIdleGzipJobs()
	data := mixedData(4*gzipBlock, 17)
	level := 6
	var bufs [3]bytes.Buffer
	var ws []io.WriteCloser
	for i := range bufs {
		zw, err := Compression{Type: Gzip, Level: &level}.NewWriter(&bufs[i], 8)
		if err != nil {
			t.Fatal(err)
		}
		zw.(*tracked).WriteCloser.(*nativeGzipWriter).decide = func() int { return 2 }
		if _, err := zw.Write(data); err != nil {
			t.Fatal(err)
		}
		ws = append(ws, zw)
	}
	for _, zw := range ws {
		z := zw.(*tracked).WriteCloser.(*nativeGzipWriter)
		for _, j := range z.fifo {
			<-j.done
			j.done <- struct{}{}
			if j.ob != nil {
				t.Errorf("an encoded block waiting to be written holds an output buffer")
			}
		}
	}
	gzipJobs.mu.Lock()
	mapped := gzipJobs.mapped
	gzipJobs.mu.Unlock()
	if mapped > runtime.GOMAXPROCS(0) {
		t.Errorf("%d output buffers mapped by 3 streams, want at most GOMAXPROCS (%d)", mapped, runtime.GOMAXPROCS(0))
	}
	for _, zw := range ws {
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for i := range bufs {
		if !bytes.Equal(bufs[i].Bytes(), bufs[0].Bytes()) {
			t.Errorf("stream %d's bytes differ from stream 0's", i)
		}
	}
	if got := gunzip(t, bufs[0].Bytes()); !bytes.Equal(got, data) {
		t.Error("read back wrong")
	}
}

// TestStoredMemberIsLibdeflates: a block that looks incompressible is
// written stored, straight from its input, in the bytes libdeflate's level
// 0 makes of it (the bytes lade wrote when libdeflate stored such blocks),
// and without mapping an output buffer; blocks of odd sizes, empty
// included, match too.
func TestStoredMemberIsLibdeflates(t *testing.T) {
	store, err := libdeflate.NewCompressor(0)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	member := func(in []byte) []byte {
		out, err := store.Gzip(make([]byte, 0, store.GzipBound(len(in))), in)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	random := make([]byte, 3*gzipBlock+12345)
	rand.New(rand.NewSource(21)).Read(random)
	for _, n := range []int{0, 1, storedBlock - 1, storedBlock, storedBlock + 1, 2 * storedBlock, gzipBlock} {
		var buf bytes.Buffer
		z := &nativeGzipWriter{w: &buf}
		z.writeStored(random[:n], crc32.ChecksumIEEE(random[:n]))
		if want := member(random[:n]); !bytes.Equal(buf.Bytes(), want) {
			t.Errorf("%d bytes stored: %d bytes differ from libdeflate level 0's %d", n, buf.Len(), len(want))
		}
	}

	trimIdleGzipJobs()
	var want []byte
	for off := 0; off < len(random); off += gzipBlock {
		b := random[off:min(off+gzipBlock, len(random))]
		if incompressible(b) {
			want = append(want, member(b)...)
		} else { // the short last block is compressed
			c, err := libdeflate.NewCompressor(5)
			if err != nil {
				t.Fatal(err)
			}
			out, err := c.Gzip(make([]byte, 0, c.GzipBound(len(b))), b)
			c.Close()
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, out...)
		}
	}
	for _, workers := range []int{1, 2} {
		var buf bytes.Buffer
		level := 6
		zw, err := Compression{Type: Gzip, Level: &level}.NewWriter(&buf, 8)
		if err != nil {
			t.Fatal(err)
		}
		zw.(*tracked).WriteCloser.(*nativeGzipWriter).decide = func() int { return workers }
		if _, err := zw.Write(random[:3*gzipBlock]); err != nil {
			t.Fatal(err)
		}
		gzipJobs.mu.Lock()
		mapped := gzipJobs.mapped
		gzipJobs.mu.Unlock()
		if mapped != 0 {
			t.Errorf("%d workers: %d output buffers mapped for 3 stored blocks, want 0", workers, mapped)
		}
		_, _ = zw.Write(random[3*gzipBlock:])
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), want) {
			t.Errorf("%d workers: %d bytes differ from libdeflate's members (%d)", workers, buf.Len(), len(want))
		}
		if got := gunzip(t, buf.Bytes()); !bytes.Equal(got, random) {
			t.Errorf("%d workers: read back wrong", workers)
		}
	}
}
