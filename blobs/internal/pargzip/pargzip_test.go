package pargzip

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/pgzip"
)

// sample returns n bytes mixing compressible text and random runs.
func sample(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, 0, n)
	for len(b) < n {
		if r.IntN(3) == 0 {
			chunk := make([]byte, r.IntN(200<<10))
			for i := range chunk {
				chunk[i] = byte(r.Uint32())
			}
			b = append(b, chunk...)
		} else {
			b = append(b, fmt.Sprintf("line %d of some text that repeats %d\n", r.IntN(1000), len(b)%97)...)
		}
	}
	return b[:n]
}

// reference compresses data with pgzip, as lade did before this package.
func reference(t testing.TB, data []byte, level, blocks int, chunk int) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := pgzip.NewWriterLevel(&buf, level)
	if err != nil {
		t.Fatal(err)
	}
	if err := zw.SetConcurrency(BlockSize, blocks); err != nil {
		t.Fatal(err)
	}
	writeChunks(t, zw, data, chunk)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func ours(t testing.TB, p *Pool, data []byte, level, chunk int) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := p.NewWriter(&buf, level)
	if err != nil {
		t.Fatal(err)
	}
	writeChunks(t, zw, data, chunk)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeChunks(t testing.TB, w io.Writer, data []byte, chunk int) {
	t.Helper()
	for len(data) > 0 {
		n := min(chunk, len(data))
		if _, err := w.Write(data[:n]); err != nil {
			t.Fatal(err)
		}
		data = data[n:]
	}
}

// TestSameBytesAsPgzip: for every size around the block and tail
// boundaries, every level and any write pattern, the bytes are pgzip's.
func TestSameBytesAsPgzip(t *testing.T) {
	p := NewPool(2, 4)
	data := sample(3*BlockSize+BlockSize/2, 7)
	sizes := []int{0, 1, 100, tailSize - 1, tailSize, tailSize + 1, BlockSize - 1, BlockSize, BlockSize + 1,
		BlockSize + tailSize, 2 * BlockSize, 3*BlockSize + BlockSize/2}
	for _, size := range sizes {
		for _, level := range []int{0, 1, 5, 6, 9} {
			for _, chunk := range []int{4096, 1 << 20, 3 * BlockSize} {
				want := reference(t, data[:size], level, 2, chunk)
				got := ours(t, p, data[:size], level, chunk)
				if !bytes.Equal(got, want) {
					t.Fatalf("size %d level %d chunk %d: %d bytes differ from pgzip's %d", size, level, chunk, len(got), len(want))
				}
			}
		}
	}
	// And they decompress to the input with the standard library.
	got := ours(t, p, data, 6, 1<<16)
	zr, err := gzip.NewReader(bytes.NewReader(got))
	if err != nil {
		t.Fatal(err)
	}
	back, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(back, data) {
		t.Fatalf("round trip: %v, %d bytes back of %d", err, len(back), len(data))
	}
}

// TestConcurrentStreams runs many streams of different sizes and levels on
// one small pool at once: each gives pgzip's bytes.
func TestConcurrentStreams(t *testing.T) {
	p := NewPool(2, 3)
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := sample(i*BlockSize/5, uint64(i))
			level := []int{1, 6, 9}[i%3]
			if got, want := ours(t, p, data, level, 10000+i), reference(t, data, level, 2, 1<<20); !bytes.Equal(got, want) {
				errs <- fmt.Errorf("stream %d (%d bytes, level %d) differs from pgzip", i, len(data), level)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(p.free); n != 3 {
		t.Errorf("%d of 3 slots back in the pool after every stream closed", n)
	}
}

// failWriter fails after n bytes.
type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		return 0, errors.New("disk full")
	}
	w.n -= len(p)
	return len(p), nil
}

// TestWriteError: an error of the underlying writer surfaces from Write or
// Close, and the stream's slots go back to the pool.
func TestWriteError(t *testing.T) {
	p := NewPool(2, 4)
	for _, limit := range []int{0, 5, 100, 2 << 20} {
		zw, err := p.NewWriter(&failWriter{n: limit}, 6)
		if err != nil {
			t.Fatal(err)
		}
		data := sample(5*BlockSize, 3)
		var werr error
		for i := 0; i < len(data) && werr == nil; i += 1 << 16 {
			_, werr = zw.Write(data[i : i+1<<16])
		}
		cerr := zw.Close()
		if werr == nil && cerr == nil {
			t.Fatalf("limit %d: no error from Write or Close", limit)
		}
		for _, err := range []error{werr, cerr} {
			if err != nil && err.Error() != "disk full" {
				t.Errorf("limit %d: error %v, want the writer's", limit, err)
			}
		}
		if _, err := zw.Write([]byte("x")); err == nil {
			t.Errorf("limit %d: write after close accepted", limit)
		}
		if n := len(p.free); n != 4 {
			t.Errorf("limit %d: %d of 4 slots back in the pool", limit, n)
		}
	}
}

// TestInvalidLevel names the accepted range.
func TestInvalidLevel(t *testing.T) {
	if _, err := NewPool(1, 2).NewWriter(io.Discard, 10); err == nil {
		t.Fatal("level 10 accepted")
	}
}

// stallWriter takes the gzip header, then blocks until released.
type stallWriter struct {
	release chan struct{}
	header  bool
}

func (w *stallWriter) Write(p []byte) (int, error) {
	if !w.header {
		w.header = true
		return len(p), nil
	}
	<-w.release
	return len(p), nil
}

// TestStalledStreamDoesNotStallOthers: a stream whose consumer never reads
// holds its slots, and another stream still finishes, over the budget.
func TestStalledStreamDoesNotStallOthers(t *testing.T) {
	p := NewPool(2, 2)
	stall := &stallWriter{release: make(chan struct{})}
	stuck, err := p.NewWriter(stall, 6)
	if err != nil {
		t.Fatal(err)
	}
	stuckDone := make(chan error, 1)
	go func() {
		_, err := stuck.Write(sample(8*BlockSize, 1))
		if err == nil {
			err = stuck.Close()
		}
		stuckDone <- err
	}()
	// Wait until the stalled stream holds every slot of the budget.
	for deadline := time.Now().Add(10 * time.Second); len(p.free) != 0 || len(stuck.tokens) != 2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the stalled stream never took both slots")
		}
	}
	data := sample(3*BlockSize, 2)
	done := make(chan []byte, 1)
	go func() { done <- ours(t, p, data, 6, 1<<20) }()
	select {
	case got := <-done:
		if !bytes.Equal(got, reference(t, data, 6, 2, 1<<20)) {
			t.Error("the other stream's bytes differ from pgzip's")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a stalled stream stalled another")
	}
	if p.extra.Load() == 0 {
		t.Error("the other stream finished without slots outside the budget, while the stalled one held them all")
	}
	close(stall.release)
	if err := <-stuckDone; err != nil {
		t.Fatal(err)
	}
}

// slowWriter takes delay for every write.
type slowWriter struct{ delay time.Duration }

func (w slowWriter) Write(p []byte) (int, error) {
	time.Sleep(w.delay)
	return len(p), nil
}

// TestBusyPoolStaysInBudget: streams that wait longer than overBudgetWait
// for a busy pool (two slots, 100 streams whose consumers take 30 ms a
// write) keep waiting rather than take slots outside the budget, since
// slots keep coming back.
func TestBusyPoolStaysInBudget(t *testing.T) {
	p := NewPool(2, 2)
	data := sample(BlockSize+10, 5)
	start := time.Now()
	parallel(100, func() {
		zw, err := p.NewWriter(slowWriter{30 * time.Millisecond}, 6)
		if err == nil {
			_, err = zw.Write(data)
		}
		if err == nil {
			err = zw.Close()
		}
		if err != nil {
			t.Error(err)
		}
	})
	if took := time.Since(start); took < 2*overBudgetWait {
		t.Fatalf("the streams took only %v: the pool was not busy for long enough to test anything", took)
	}
	if n := p.extra.Load(); n != 0 {
		t.Errorf("%d slots taken outside the budget of a busy pool", n)
	}
}

// TestAbandonedWriterGivesSlotsBack: a Writer dropped mid-stream without
// Close gives its slots back once collected.
func TestAbandonedWriterGivesSlotsBack(t *testing.T) {
	p := NewPool(1, 2)
	func() {
		zw, err := p.NewWriter(io.Discard, 6)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := zw.Write(sample(BlockSize+10, 4)); err != nil {
			t.Fatal(err)
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for len(p.free) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of 2 slots back after the writer was dropped", len(p.free))
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}

// BenchmarkPargzip compares the shared pool with pgzip, one stream and
// four at once, on mixed data; -benchmem shows the heap each allocates.
func BenchmarkPargzip(b *testing.B) {
	data := sample(16*BlockSize, 9)
	for _, streams := range []int{1, 4} {
		b.Run(fmt.Sprintf("pargzip/streams=%d", streams), func(b *testing.B) {
			b.SetBytes(int64(streams * len(data)))
			for b.Loop() {
				parallel(streams, func() { ours(b, Default(), data, 6, 1<<16) })
			}
		})
		b.Run(fmt.Sprintf("pgzip/streams=%d", streams), func(b *testing.B) {
			b.SetBytes(int64(streams * len(data)))
			for b.Loop() {
				parallel(streams, func() { reference(b, data, 6, max(runtime.GOMAXPROCS(0), 2), 1<<16) })
			}
		})
	}
}

func parallel(n int, f func()) {
	var wg sync.WaitGroup
	for range n {
		wg.Go(f)
	}
	wg.Wait()
}
