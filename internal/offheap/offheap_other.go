//go:build !unix

package offheap

// Alloc returns n zeroed bytes from the Go heap: this system has no
// anonymous maps lade uses.
func Alloc(n int) []byte { return make([]byte, n) }

// Free does nothing: the garbage collector frees what Alloc returned.
func Free([]byte) {}
