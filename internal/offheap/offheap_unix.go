//go:build unix

package offheap

import "syscall"

// Alloc returns n zeroed bytes mapped outside the Go heap, or from the Go
// heap if the kernel refuses the mapping. Free gives them back.
func Alloc(n int) []byte {
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return make([]byte, n)
	}
	return b
}

// Free unmaps b, which must be a whole buffer returned by Alloc (any
// length, its full capacity is unmapped); nothing may use b afterwards.
// A buffer Alloc took from the Go heap is left to the garbage collector.
func Free(b []byte) {
	if cap(b) == 0 {
		return
	}
	_ = syscall.Munmap(b[:cap(b)]) // EINVAL for a heap buffer: nothing to do
}
