// Package zstdchunked reads zstd:chunked layers the way containers/storage
// does, with its own reader, so that tests check lade's layers against
// the consumer: the TOC and tar-split read and verified by
// go.podman.io/storage's pkg/chunked, every file's frames and every chunk
// decompressed alone and compared with the layer's tar, and the tar
// rebuilt from the tar-split.
package zstdchunked

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"time"
	_ "unsafe" // go:linkname to containers/storage's TOC reader

	digest "github.com/opencontainers/go-digest"
	"go.podman.io/storage/pkg/chunked"
)

// TOC is containers/storage's minimal.TOC, field for field (its package
// is internal): what its reader returns.
type TOC struct {
	Version        int            `json:"version"`
	Entries        []FileMetadata `json:"entries"`
	TarSplitDigest digest.Digest  `json:"tarSplitDigest,omitempty"`
}

// FileMetadata is containers/storage's minimal.FileMetadata, field for field.
type FileMetadata struct {
	Type        string            `json:"type"`
	Name        string            `json:"name"`
	Linkname    string            `json:"linkName,omitempty"`
	Mode        int64             `json:"mode,omitempty"`
	Size        int64             `json:"size,omitempty"`
	UID         int               `json:"uid,omitempty"`
	GID         int               `json:"gid,omitempty"`
	ModTime     *time.Time        `json:"modtime,omitempty"`
	AccessTime  *time.Time        `json:"accesstime,omitempty"`
	ChangeTime  *time.Time        `json:"changetime,omitempty"`
	Devmajor    int64             `json:"devMajor,omitempty"`
	Devminor    int64             `json:"devMinor,omitempty"`
	Xattrs      map[string]string `json:"xattrs,omitempty"`
	Digest      string            `json:"digest,omitempty"`
	Offset      int64             `json:"offset,omitempty"`
	EndOffset   int64             `json:"endOffset,omitempty"`
	ChunkSize   int64             `json:"chunkSize,omitempty"`
	ChunkOffset int64             `json:"chunkOffset,omitempty"`
	ChunkDigest string            `json:"chunkDigest,omitempty"`
	ChunkType   string            `json:"chunkType,omitempty"`
}

// The layer annotation naming the TOC's digest.
const manifestChecksumKey = "io.github.containers.zstd-chunked.manifest-checksum"

// readZstdChunkedManifest is containers/storage's reader of a zstd:chunked
// layer's TOC, the one its partial pulls use: it fetches the TOC and the
// tar-split at the positions the annotations give, checks the TOC against
// the manifest-checksum annotation and the tar-split against the TOC's
// digest, decompresses both, parses the TOC and checks that TOC and
// tar-split describe the same entries. It is unexported; its *minimal.TOC
// result is laid out as TOC.
//
//go:linkname readZstdChunkedManifest go.podman.io/storage/pkg/chunked.readZstdChunkedManifest
func readZstdChunkedManifest(tmpDir string, blobStream chunked.ImageSourceSeekable, tocDigest digest.Digest, annotations map[string]string, compressed bool) ([]byte, *TOC, *os.File, int64, error)

// blobSource serves ranges of a blob, as a registry serves range requests.
type blobSource []byte

// GetBlobAt implements chunked.ImageSourceSeekable.
func (b blobSource) GetBlobAt(chunks []chunked.ImageSourceChunk) (chan io.ReadCloser, chan error, error) {
	streams, errs := make(chan io.ReadCloser), make(chan error)
	go func() {
		defer close(streams)
		defer close(errs)
		for _, c := range chunks {
			if c.Offset+c.Length > uint64(len(b)) {
				errs <- fmt.Errorf("range %d+%d beyond the blob's %d bytes", c.Offset, c.Length, len(b))
				return
			}
			streams <- io.NopCloser(bytes.NewReader(b[c.Offset : c.Offset+c.Length]))
		}
	}()
	return streams, errs, nil
}

// ReadTOC reads blob's TOC and tar-split (uncompressed) with
// containers/storage's reader, which verifies them against annotations.
func ReadTOC(blob []byte, annotations map[string]string) (*TOC, []byte, error) {
	tocDigest, err := digest.Parse(annotations[manifestChecksumKey])
	if err != nil {
		return nil, nil, fmt.Errorf("%s annotation: %w", manifestChecksumKey, err)
	}
	tmp, err := os.MkdirTemp("", "zstdchunked-toc")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(tmp)
	_, toc, split, _, err := readZstdChunkedManifest(tmp, blobSource(blob), tocDigest, annotations, true)
	if err != nil {
		return nil, nil, fmt.Errorf("containers/storage cannot read the TOC: %w", err)
	}
	if split == nil {
		return nil, nil, fmt.Errorf("the TOC names no tar-split")
	}
	defer split.Close()
	if _, err := split.Seek(0, io.SeekStart); err != nil {
		return nil, nil, err
	}
	tarSplit, err := io.ReadAll(split)
	return toc, tarSplit, err
}
