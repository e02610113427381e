package pargzip

import (
	"container/heap"
	"sync"
	"sync/atomic"
	"time"
)

// costWeight scales a block's estimated compression time in its place in
// the queue (see schedule).
const costWeight = 4

// schedule is the queue of submitted blocks. Workers take the block whose
// estimated finish is earliest: the time it was submitted plus costWeight
// times the time its stream's previous block took to compress. Cheap
// blocks (a stream of incompressible data is stored at a few GB/s, a
// small layer's first block has no estimate yet) go ahead of expensive
// ones queued shortly before them, so such a stream is sealed, and can
// be sent on, early instead of at the pace of the slowest stream beside
// it; an expensive block waits at most costWeight times its own cost
// behind later cheap ones, so nothing starves. The order of blocks
// changes when a stream's blocks are compressed, never its bytes.
type schedule struct {
	mu     sync.Mutex
	ready  sync.Cond
	blocks blockHeap
	seq    uint64
}

func newSchedule() *schedule {
	q := &schedule{}
	q.ready.L = &q.mu
	return q
}

// push queues s, whose stream's last block took cost to compress.
func (q *schedule) push(s *slot, cost time.Duration) {
	q.mu.Lock()
	q.seq++
	s.key, s.seq = time.Now().Add(costWeight*cost), q.seq
	heap.Push(&q.blocks, s)
	q.mu.Unlock()
	q.ready.Signal()
}

// pop waits for a block and takes the one to compress next.
func (q *schedule) pop() *slot {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.blocks) == 0 {
		q.ready.Wait()
	}
	return heap.Pop(&q.blocks).(*slot)
}

// blockHeap orders blocks by key, then by submission.
type blockHeap []*slot

func (h blockHeap) Len() int { return len(h) }
func (h blockHeap) Less(i, j int) bool {
	if !h[i].key.Equal(h[j].key) {
		return h[i].key.Before(h[j].key)
	}
	return h[i].seq < h[j].seq
}
func (h blockHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *blockHeap) Push(x any)   { *h = append(*h, x.(*slot)) }
func (h *blockHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return s
}

// costEstimate is a stream's estimate of the time its next block takes
// to compress: the time its last block took. Workers set it, the stream's
// writer reads it.
type costEstimate struct{ ns atomic.Int64 }

func (c *costEstimate) set(d time.Duration) { c.ns.Store(int64(d)) }
func (c *costEstimate) get() time.Duration  { return time.Duration(c.ns.Load()) }
