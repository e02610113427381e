package push

import (
	"fmt"
	"io"

	"github.com/lade-build/lade/cache"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// verifiedReader hashes a blob while it is uploaded and withholds the read
// that completes it unless the digest matches: a blob corrupted in the store
// never reaches the registry whole, so the upload is aborted (the request
// body ends short of its Content-Length) instead of being sent to the end
// and rejected by the registry, or accepted by one that does not check.
type verifiedReader struct {
	r    io.ReadSeeker
	ra   io.ReaderAt
	desc ocispec.Descriptor
	d    digest.Digester
	off  int64
}

// Read implements io.Reader.
func (v *verifiedReader) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	if n > 0 {
		v.d.Hash().Write(p[:n])
		v.off += int64(n)
		if v.off == v.desc.Size && v.d.Digest() != v.desc.Digest {
			return 0, fmt.Errorf("blob %s in the store is corrupt (run lade check): %w", v.desc.Digest, cache.ErrDigestMismatch)
		}
	}
	return n, err
}

// Seek seeks the blob (content.Copy resumes at an offset) and hashes the
// bytes before the new offset.
func (v *verifiedReader) Seek(offset int64, whence int) (int64, error) {
	n, err := v.r.Seek(offset, whence)
	if err != nil {
		return n, err
	}
	v.d = v.desc.Digest.Algorithm().Digester()
	if _, err := io.Copy(v.d.Hash(), io.NewSectionReader(v.ra, 0, n)); err != nil {
		return n, fmt.Errorf("read blob %s: %w", v.desc.Digest, err)
	}
	v.off = n
	return n, nil
}
