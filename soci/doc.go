// Package soci builds the zTOCs soci-snapshotter reads to lazily pull gzip
// layers, in the pass that compresses each layer: a Builder takes the tar
// as it passes (the file table, with each file's offset in the
// uncompressed stream) and the start of each of lade's gzip blocks (which
// are byte-aligned and need only the 32 KiB before them), and places a
// checkpoint at the first block start at or past each span boundary. The
// zTOC is serialized with soci-snapshotter's flatbuffers schema and its
// gzip zinfo layout; nothing is decompressed or read twice. FromGzip builds
// the zTOC of a stored gzip blob of any origin in one read, with lade's own
// DEFLATE decoder (inflate.go), which reports where each block starts, to
// the bit, as zlib's zran does for soci-snapshotter. Packaging zTOCs
// into a SOCI-enabled image is the exporter's (exporter/soci.go).
package soci
