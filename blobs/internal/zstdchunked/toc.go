// Package zstdchunked writes containers/storage's zstd:chunked layers in
// one pass over the tar stream: every regular file's content in zstd
// frames of its own (split into chunks by a rolling checksum, runs of
// zeros as "zeros" chunks), the tar headers and padding in frames between
// them, then the table of contents (TOC) and the tar-split data in zstd
// skippable frames and a 64-byte footer. A plain zstd reader skips the
// skippable frames and gets back the tar byte for byte. The chunk
// boundaries, TOC and tar-split are those go.podman.io/storage's
// compressor (pkg/chunked/compressor) makes for the same tar; the frames
// are klauspost's or libzstd's zstd frames at the chosen level, without
// content checksums.
package zstdchunked

import (
	"encoding/binary"
	"time"

	digest "github.com/opencontainers/go-digest"
)

// The layer annotations of a zstd:chunked blob, as containers/storage names
// them (pkg/chunked/internal/minimal).
const (
	// ManifestChecksumKey is the sha256 of the compressed TOC.
	ManifestChecksumKey = "io.github.containers.zstd-chunked.manifest-checksum"
	// ManifestInfoKey is "offset:length:uncompressed length:type" of the TOC.
	ManifestInfoKey = "io.github.containers.zstd-chunked.manifest-position"
	// TarSplitInfoKey is "offset:length:uncompressed length" of the tar-split.
	TarSplitInfoKey = "io.github.containers.zstd-chunked.tarsplit-position"
)

// AnnotationKeys are the annotations a zstd:chunked layer carries; a layer
// converted to another compression must lose them.
var AnnotationKeys = []string{ManifestChecksumKey, ManifestInfoKey, TarSplitInfoKey}

// Chunking parameters of containers/storage's compressor.
const (
	// rollsumBits: a chunk ends where the low 16 bits of the rolling
	// checksum are all set (64 KiB chunks on average).
	rollsumBits = 16
	// holesThreshold: a run of at least this many zero bytes is a zeros chunk.
	holesThreshold = 1 << 10
	// manifestTypeCRFS is the only TOC type.
	manifestTypeCRFS = 1
	// footerSize is the size of the footer's payload.
	footerSize = 64
)

// Entry types of the TOC.
const (
	typeReg     = "reg"
	typeLink    = "hardlink"
	typeChar    = "char"
	typeBlock   = "block"
	typeDir     = "dir"
	typeFifo    = "fifo"
	typeSymlink = "symlink"
	typeChunk   = "chunk"

	chunkTypeData  = ""
	chunkTypeZeros = "zeros"
)

var (
	skippableFrameMagic = []byte{0x50, 0x2a, 0x4d, 0x18}
	chunkedFrameMagic   = []byte{0x47, 0x4e, 0x55, 0x6c, 0x49, 0x6e, 0x55, 0x78}
)

// TOC is the table of contents, laid out field for field as
// containers/storage's minimal.TOC (the tests read it through its reader).
type TOC struct {
	Version        int            `json:"version"`
	Entries        []FileMetadata `json:"entries"`
	TarSplitDigest digest.Digest  `json:"tarSplitDigest,omitempty"`
}

// FileMetadata is one TOC entry, laid out as minimal.FileMetadata: a file
// with its content's digest and frame offsets, or one more chunk of the
// regular file named before it.
type FileMetadata struct {
	Type       string            `json:"type"`
	Name       string            `json:"name"`
	Linkname   string            `json:"linkName,omitempty"`
	Mode       int64             `json:"mode,omitempty"`
	Size       int64             `json:"size,omitempty"`
	UID        int               `json:"uid,omitempty"`
	GID        int               `json:"gid,omitempty"`
	ModTime    *time.Time        `json:"modtime,omitempty"`
	AccessTime *time.Time        `json:"accesstime,omitempty"`
	ChangeTime *time.Time        `json:"changetime,omitempty"`
	Devmajor   int64             `json:"devMajor,omitempty"`
	Devminor   int64             `json:"devMinor,omitempty"`
	Xattrs     map[string]string `json:"xattrs,omitempty"`
	Digest     string            `json:"digest,omitempty"`
	Offset     int64             `json:"offset,omitempty"`
	EndOffset  int64             `json:"endOffset,omitempty"`

	ChunkSize   int64  `json:"chunkSize,omitempty"`
	ChunkOffset int64  `json:"chunkOffset,omitempty"`
	ChunkDigest string `json:"chunkDigest,omitempty"`
	ChunkType   string `json:"chunkType,omitempty"`
}

// footer is the last skippable frame's payload: where the TOC and the
// tar-split are, and the zstd:chunked magic.
type footer struct {
	tocOffset, tocLength, tocUncompressed           uint64
	tarSplitOffset, tarSplitLength, tarSplitUncompr uint64
}

func (f footer) bytes() []byte {
	b := make([]byte, footerSize)
	for i, v := range []uint64{f.tocOffset, f.tocLength, f.tocUncompressed, manifestTypeCRFS,
		f.tarSplitOffset, f.tarSplitLength, f.tarSplitUncompr} {
		binary.LittleEndian.PutUint64(b[8*i:], v)
	}
	copy(b[8*7:], chunkedFrameMagic)
	return b
}

// skippableFrame returns data in a zstd skippable frame.
func skippableFrame(data []byte) []byte {
	b := make([]byte, 0, 8+len(data))
	b = append(b, skippableFrameMagic...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(data)))
	return append(b, data...)
}
