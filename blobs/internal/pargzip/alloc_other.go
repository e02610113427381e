//go:build !unix

package pargzip

// alloc returns n bytes from the Go heap.
func alloc(n int) []byte { return make([]byte, n) }
