// Package offheap allocates large, long-lived byte buffers outside the Go
// heap (anonymous memory maps on Unix).
//
// The native gzip encoders keep a few megabyte-sized buffers per layer in
// flight, and a diff's tar pipeline four of 256 KiB (Pool). On the Go
// heap every live byte also raises the garbage collector's heap goal by
// as much again (GOGC=100), so a buffer of n bytes costs up to 2n of
// resident memory; mapped outside the heap it costs n, and only while it
// is mapped. Callers must Free what they Alloc once nothing uses it.
package offheap
