// Package libdeflate binds Eric Biggers' libdeflate (Debian's
// libdeflate-dev) through cgo, for lade's default gzip level. It is built
// only with cgo and the build tag native (`go build -tags native`), so a
// default build needs no C library; without them Available is false and
// NewCompressor fails.
//
// libdeflate compresses whole buffers only: it has no preset dictionary
// and always ends its output with a final block. lade therefore makes each
// 1 MiB block a gzip member of its own (header, deflate, CRC-32 and size);
// the members concatenate into a multi-member gzip file, which RFC 1952
// allows and every gzip reader lade's images meet reads as one stream (Go's
// compress/gzip, so containerd, Docker and BuildKit; pigz; GNU gzip). Its
// bytes depend only on the block, the level and the library version.
package libdeflate
