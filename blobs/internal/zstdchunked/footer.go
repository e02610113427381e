package zstdchunked

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"

	digest "github.com/opencontainers/go-digest"
)

// maxTOC bounds the compressed TOC ReadAnnotations reads, as
// containers/storage bounds the TOCs it reads (50 MiB).
const maxTOC = 50 << 20

// ReadAnnotations returns the layer annotations of the zstd:chunked blob
// of size bytes that r reads, from its footer and its TOC (which it reads
// to checksum); nil and no error when the blob has no zstd:chunked footer.
// It recovers the annotations of a blob whose descriptor lost them.
func ReadAnnotations(r io.ReaderAt, size int64) (map[string]string, error) {
	const tail = 8 + footerSize // the footer's skippable frame
	if size < tail {
		return nil, nil
	}
	var f [tail]byte
	if _, err := r.ReadAt(f[:], size-tail); err != nil {
		return nil, fmt.Errorf("read zstd:chunked footer: %w", err)
	}
	b := f[8:]
	if !bytes.Equal(f[:4], skippableFrameMagic) || !bytes.Equal(b[8*7:], chunkedFrameMagic) {
		return nil, nil
	}
	v := func(i int) int64 { return int64(binary.LittleEndian.Uint64(b[8*i:])) }
	tocOff, tocLen, tocRaw, typ := v(0), v(1), v(2), v(3)
	splitOff, splitLen, splitRaw := v(4), v(5), v(6)
	if typ != manifestTypeCRFS || tocLen <= 0 || tocLen > maxTOC || tocOff < 8 || tocOff+tocLen > size-tail {
		return nil, fmt.Errorf("zstd:chunked footer describes no valid TOC (type %d, %d bytes at %d in a %d-byte blob)", typ, tocLen, tocOff, size)
	}
	toc := make([]byte, tocLen)
	if _, err := r.ReadAt(toc, tocOff); err != nil {
		return nil, fmt.Errorf("read zstd:chunked TOC: %w", err)
	}
	return map[string]string{
		ManifestChecksumKey: digest.FromBytes(toc).String(),
		ManifestInfoKey:     fmt.Sprintf("%d:%d:%d:%d", tocOff, tocLen, tocRaw, manifestTypeCRFS),
		TarSplitInfoKey:     fmt.Sprintf("%d:%d:%d", splitOff, splitLen, splitRaw),
	}, nil
}
