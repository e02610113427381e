// Package isal binds the deflate encoder of Intel's ISA-L (igzip, Debian's
// libisal-dev) through cgo, for lade's fastest gzip levels. It is built
// only with cgo and the build tag native (`go build -tags native`), so a
// default build needs no C library; without them Available is false and
// NewEncoder fails.
//
// An Encoder deflates one block at a time the way lade's parallel gzip
// does: primed with the previous block's last 32 KiB as dictionary, ended
// by a sync flush (so the block's output is byte-aligned and blocks
// concatenate into one deflate stream), the stream's last block closed.
// Its bytes depend only on the block, the dictionary, the level and the
// library version.
package isal
