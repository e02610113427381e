// Package pargzip is lade's parallel gzip: the exact bytes of
// github.com/klauspost/pgzip at 1 MiB blocks (each block deflated with the
// last 16 KiB of the previous one as dictionary, sync-flushed, the last one
// closed), made by workers shared by every stream of the process instead of
// goroutines and buffers per stream.
//
// A Pool holds a fixed number of workers (GOMAXPROCS by default) and a
// budget of block slots (input and output buffer pairs) allocated once
// outside the Go heap and reused, so the memory of any number of concurrent
// streams stays bounded and does not feed the garbage collector's growth.
// Streams wait for slots in first-come order, so a small layer waits for a
// block of a large one, never for the whole layer; workers take blocks in
// the order they are submitted.
package pargzip

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/flate"
	"github.com/lade-build/lade/internal/offheap"
)

const (
	// BlockSize is the size of an input block. It is part of the output:
	// another size gives other bytes.
	BlockSize = 1 << 20
	// tailSize is the dictionary carried from one block to the next.
	tailSize = 16 << 10
	// outSize is an output buffer's capacity: deflate's worst case for a
	// block (stored blocks add 5 bytes per 64 KiB) with room to spare.
	outSize = BlockSize + BlockSize>>4
	// overBudgetWait is how long a stream waits for a slot while no slot is
	// given back before it takes one outside the budget: a stream whose
	// consumer stalls may hold its slots indefinitely, and must not stall
	// every other stream; a busy pool, whose slots keep coming back, is
	// waited for.
	overBudgetWait = time.Second
)

// Pool compresses the blocks of any number of Writers on shared workers.
type Pool struct {
	jobs     chan *slot
	free     chan *slot
	perWrite int          // slots one stream may hold
	returned atomic.Int64 // budget slots given back so far
	extra    atomic.Int64 // slots taken outside the budget so far
}

var (
	defaultOnce sync.Once
	defaultPool *Pool
)

// Default returns the process-wide pool: GOMAXPROCS workers (at least 2),
// two slots per worker plus two, up to workers+2 of them per stream.
func Default() *Pool {
	defaultOnce.Do(func() {
		n := max(runtime.GOMAXPROCS(0), 2)
		defaultPool = NewPool(n, 2*n+2)
	})
	return defaultPool
}

// NewPool starts workers goroutines sharing slots block slots (each about
// 2 MiB, allocated now). Pools live as long as the process.
func NewPool(workers, slots int) *Pool {
	workers, slots = max(workers, 1), max(slots, 2)
	p := &Pool{
		jobs:     make(chan *slot, slots),
		free:     make(chan *slot, slots),
		perWrite: min(workers+2, slots),
	}
	for range slots {
		p.free <- newSlot(true)
	}
	for range workers {
		go p.work()
	}
	return p
}

// slot is one block's buffers and the state of its compression.
type slot struct {
	in     []byte // the block's input
	out    []byte // its compressed bytes, set by the worker
	outCap []byte // out's own buffer
	dict   []byte // the previous block's tail, nil for the first block
	dictB  []byte // dict's own buffer
	level  int
	final  bool          // the stream's last block: deflate is closed
	done   chan struct{} // a worker finished the block
	pooled bool          // belongs to the pool's budget (else it is dropped)
}

func newSlot(pooled bool) *slot {
	mk := offheap.Alloc
	if !pooled {
		mk = func(n int) []byte { return make([]byte, n) }
	}
	in, out, dict := mk(BlockSize), mk(outSize), mk(tailSize)
	return &slot{in: in[:0], outCap: out[:0], dictB: dict[:0], pooled: pooled, done: make(chan struct{}, 1)}
}

// acquire takes a free slot. It waits as long as the pool gives slots
// back, and takes one outside the budget after overBudgetWait without any.
func (p *Pool) acquire() *slot {
	select {
	case s := <-p.free:
		return s
	default:
	}
	t := time.NewTicker(overBudgetWait)
	defer t.Stop()
	seen := p.returned.Load()
	for {
		select {
		case s := <-p.free:
			return s
		case <-t.C:
			if n := p.returned.Load(); n != seen {
				seen = n
				continue
			}
			p.extra.Add(1)
			return newSlot(false)
		}
	}
}

// release returns a slot to the budget.
func (p *Pool) release(s *slot) {
	s.in, s.out, s.dict, s.final = s.in[:0], nil, nil, false
	if s.pooled {
		p.free <- s
		p.returned.Add(1)
	}
}

// work compresses submitted blocks, keeping one deflate writer per level.
func (p *Pool) work() {
	writers := map[int]*flate.Writer{}
	for s := range p.jobs {
		fw := writers[s.level]
		if fw == nil {
			// The level was checked by NewWriter.
			fw, _ = flate.NewWriterDict(nil, s.level, nil)
			writers[s.level] = fw
		}
		sw := &sliceWriter{b: s.outCap[:0]}
		fw.ResetDict(sw, s.dict)
		_, _ = fw.Write(s.in)
		_ = fw.Flush()
		if s.final {
			_ = fw.Close()
		}
		// Writes to a sliceWriter cannot fail, so neither can the writer.
		s.out = sw.b
		s.done <- struct{}{}
	}
}

// sliceWriter appends to b; past b's capacity append moves it to the heap.
type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}
