package offheap

import (
	"sync"
	"time"
)

// Pool keeps equal-sized buffers mapped outside the Go heap for reuse: the
// per-layer buffers of a diff's tar pipeline, which a sync.Pool would keep
// on the heap, where each live one raises the collector's heap goal by as
// much again while layers are written. A buffer given back waits in the
// pool, up to a bound, and the pool unmaps every waiting buffer once none
// was given back for its idle time, so a daemon keeps none between
// exports. It is safe for concurrent use.
type Pool struct {
	size, maxIdle int
	idleFor       time.Duration

	mu    sync.Mutex
	idle  [][]byte
	timer *time.Timer
	// mapped counts the buffers Get mapped and Put or trim did not unmap:
	// for tests.
	mapped int
}

// NewPool returns a pool of size-byte buffers that keeps at most maxIdle
// of them waiting, for at most idleFor after the last one came back.
func NewPool(size, maxIdle int, idleFor time.Duration) *Pool {
	return &Pool{size: size, maxIdle: maxIdle, idleFor: idleFor}
}

// Get returns a buffer of the pool's size, waiting or newly mapped (its
// bytes are not zeroed when reused). Give it back with Put.
func (p *Pool) Get() []byte {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		b := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return b
	}
	p.mapped++
	p.mu.Unlock()
	return Alloc(p.size)
}

// Put gives back a buffer Get returned; nothing may use it afterwards.
// A buffer of another size is not kept.
func (p *Pool) Put(b []byte) {
	b = b[:cap(b)]
	if len(b) != p.size {
		Free(b)
		return
	}
	p.mu.Lock()
	if len(p.idle) >= p.maxIdle {
		p.mapped--
		p.mu.Unlock()
		Free(b)
		return
	}
	p.idle = append(p.idle, b)
	if p.timer == nil {
		p.timer = time.AfterFunc(p.idleFor, p.trim)
	} else {
		p.timer.Reset(p.idleFor)
	}
	p.mu.Unlock()
}

// trim unmaps the waiting buffers. Buffers handed out stay mapped: their
// holders give them back with Put.
func (p *Pool) trim() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mapped -= len(idle)
	p.mu.Unlock()
	for _, b := range idle {
		Free(b)
	}
}

// Mapped returns how many of the pool's buffers are mapped: handed out or
// waiting.
func (p *Pool) Mapped() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mapped
}
