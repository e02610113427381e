//go:build unix

package pargzip

import "syscall"

// alloc returns n bytes mapped outside the Go heap: the pool's buffers live
// as long as the process, and kept off the heap they neither count towards
// the garbage collector's heap goal nor double with it.
func alloc(n int) []byte {
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return make([]byte, n)
	}
	return b
}
