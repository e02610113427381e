package offheap

import (
	"testing"
	"time"
)

// TestAllocFree: Alloc's buffer is zeroed, writable at full length, and
// Free takes it and (doing nothing) a heap buffer.
func TestAllocFree(t *testing.T) {
	const n = 2<<20 + 123
	b := Alloc(n)
	if len(b) != n {
		t.Fatalf("Alloc(%d) returned %d bytes", n, len(b))
	}
	for i := 0; i < n; i += 4096 {
		if b[i] != 0 {
			t.Fatalf("byte %d is %d, want 0", i, b[i])
		}
		b[i] = byte(i)
	}
	b[n-1] = 1
	Free(b[:0])
	Free(make([]byte, 10))
	Free(nil)
}

// TestPool: a buffer given back is handed out again, the pool keeps at
// most maxIdle waiting (the rest are unmapped at once), and it unmaps the
// waiting ones once none came back for its idle time, leaving those handed
// out mapped.
func TestPool(t *testing.T) {
	p := NewPool(64<<10, 2, 50*time.Millisecond)
	a, b, c, d := p.Get(), p.Get(), p.Get(), p.Get()
	if len(a) != 64<<10 || p.Mapped() != 4 {
		t.Fatalf("Get: len %d, mapped %d; want %d, 4", len(a), p.Mapped(), 64<<10)
	}
	a[0] = 7
	p.Put(a)
	if e := p.Get(); &e[0] != &a[0] || e[0] != 7 {
		t.Fatal("a buffer given back was not handed out again")
	}
	p.Put(a)
	p.Put(b)
	p.Put(c)
	if got := p.Mapped(); got != 3 {
		t.Fatalf("after three Puts over a bound of 2 waiting: %d mapped, want 3 (two waiting, one out)", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for p.Mapped() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("idle buffers not unmapped: %d mapped, want 1 (the one out)", p.Mapped())
		}
		time.Sleep(10 * time.Millisecond)
	}
	d[len(d)-1] = 1 // still mapped
	p.Put(d)
}
