package offheap

import "testing"

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
