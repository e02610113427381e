package cache

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/containerd/errdefs"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// The errors about content that does not match its descriptor, shared by
// every package that reads content (layers here, blobs in exporter/archive
// and registries): one sentinel and one errdefs class, data loss, because
// such content is corrupt (in a store, a file or on the wire), and no
// retry or change of state on the caller's side makes it right.
var (
	// ErrDigestMismatch is matched (errors.Is) by every error about content
	// whose digest (or size) differs from the one its descriptor names.
	// It matches errdefs.ErrDataLoss.
	ErrDigestMismatch error = &classError{"content does not match its digest", errdefs.ErrDataLoss}
	// ErrSizeMismatch is matched by the errors about content whose size
	// differs from the one its descriptor names. They match
	// ErrDigestMismatch (and so errdefs.ErrDataLoss) too.
	ErrSizeMismatch error = &classError{"content does not have the size its descriptor names", ErrDigestMismatch}
)

// classError is an error with its own message that matches (errors.Is)
// its class: the sentinels above, and the mismatch errors, whose class is
// one of them.
type classError struct {
	msg   string
	class error
}

func (e *classError) Error() string { return e.msg }

// Unwrap classifies the error.
func (e *classError) Unwrap() error { return e.class }

// compression is how a layer stream is compressed.
type compression int

const (
	compressionNone compression = iota
	compressionGzip
	compressionZstd
)

// Layer media types lade reads, beyond the OCI ones in ocispec.
const (
	mediaTypeDockerLayer        = "application/vnd.docker.image.rootfs.diff.tar"
	mediaTypeDockerLayerGzip    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	mediaTypeDockerLayerZstd    = "application/vnd.docker.image.rootfs.diff.tar.zstd"
	mediaTypeDockerForeignLayer = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
	// mediaTypeDockerForeignTar is an uncompressed foreign layer (BuildKit
	// exports Windows base layers and its tests' foreign layers so).
	mediaTypeDockerForeignTar = "application/vnd.docker.image.rootfs.foreign.diff.tar"
)

// compressionOfMediaType returns the compression of a layer media type.
func compressionOfMediaType(mt string) (compression, error) {
	switch mt {
	case ocispec.MediaTypeImageLayer, mediaTypeDockerLayer, mediaTypeDockerForeignTar,
		ocispec.MediaTypeImageLayerNonDistributable: //nolint:staticcheck // still found in images
		return compressionNone, nil
	case ocispec.MediaTypeImageLayerGzip, mediaTypeDockerLayerGzip, mediaTypeDockerForeignLayer,
		ocispec.MediaTypeImageLayerNonDistributableGzip: //nolint:staticcheck // still found in images
		return compressionGzip, nil
	case ocispec.MediaTypeImageLayerZstd, mediaTypeDockerLayerZstd,
		ocispec.MediaTypeImageLayerNonDistributableZstd: //nolint:staticcheck // still found in images
		return compressionZstd, nil
	}
	return 0, fmt.Errorf("unsupported layer media type %q: use an OCI or Docker tar, tar+gzip or tar+zstd layer", mt)
}

// detectCompression tells the compression of a stream by its magic bytes.
func detectCompression(br *bufio.Reader) (compression, error) {
	magic, err := br.Peek(6)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("read magic bytes: %w", err)
	}
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		return compressionGzip, nil
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return compressionZstd, nil
	case bytes.HasPrefix(magic, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}):
		return 0, errors.New("xz compression is not supported: use a plain, gzip or zstd tar")
	case bytes.HasPrefix(magic, []byte("BZh")):
		return 0, errors.New("bzip2 compression is not supported: use a plain, gzip or zstd tar")
	}
	return compressionNone, nil
}

// decompress returns the decompressed stream of r. Closing it does not
// close r.
func decompress(r io.Reader, c compression) (io.ReadCloser, error) {
	switch c {
	case compressionGzip:
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("read gzip header: %w", err)
		}
		return zr, nil
	case compressionZstd:
		zr, err := zstd.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("read zstd stream: %w", err)
		}
		return zr.IOReadCloser(), nil
	}
	return io.NopCloser(r), nil
}

// verifier hashes a stream and, at EOF, checks its digest and size.
type verifier struct {
	r    io.Reader
	msg  string // "<source>: <what>", prefix of mismatch errors
	want digest.Digest
	size int64 // expected size, -1 when unknown
	d    digest.Digester
	n    int64
	err  error // the mismatch, once found
}

func newVerifier(r io.Reader, msg string, want digest.Digest, size int64) *verifier {
	return &verifier{r: r, msg: msg, want: want, size: size, d: want.Algorithm().Digester()}
}

// Read reads and hashes; at EOF it returns a mismatch error instead of EOF.
func (v *verifier) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.r.Read(p)
	v.d.Hash().Write(p[:n])
	v.n += int64(n)
	if v.size >= 0 && v.n > v.size {
		v.err = &classError{fmt.Sprintf("%s: longer than the expected %d bytes", v.msg, v.size), ErrSizeMismatch}
		return n, v.err
	}
	if errors.Is(err, io.EOF) {
		if v.size >= 0 && v.n != v.size {
			v.err = &classError{fmt.Sprintf("%s: %d bytes, expected %d", v.msg, v.n, v.size), ErrSizeMismatch}
		} else if got := v.d.Digest(); got != v.want {
			v.err = &classError{fmt.Sprintf("%s %s expected %s", v.msg, got, v.want), ErrDigestMismatch}
		}
		if v.err != nil {
			return n, v.err
		}
	}
	return n, err
}

// layerDecode says how to turn a stored or file layer into its tar.
type layerDecode struct {
	// Name prefixes errors: "layer tarball <path>", "blob <digest>".
	Name        string
	Compression compression
	// Blob and BlobSize are the expected digest and size of the raw
	// (compressed) stream; not checked when Blob is empty.
	Blob     digest.Digest
	BlobSize int64
	// DiffID is the expected digest of the tar; not checked when empty.
	DiffID digest.Digest
	// Epoch clamps timestamps when non-nil.
	Epoch *time.Time
}

// decodeLayer writes the tar of the layer stream src to w: decompressed,
// entries validated, timestamps clamped to d.Epoch, digests verified at
// EOF. A digest mismatch of the raw stream explains any other failure, so it
// is the error returned when there is one.
func decodeLayer(ctx context.Context, w io.Writer, src io.Reader, d layerDecode) error {
	if d.Blob == "" {
		return decodeTar(ctx, w, src, d)
	}
	bv := newVerifier(src, d.Name+": digest", d.Blob, d.BlobSize)
	err := decodeTar(ctx, w, bv, d)
	if err == nil || ctx.Err() == nil {
		// Read the rest of the raw stream: the decompressor may stop
		// before its end, and after a failure the digest tells whether
		// the blob is corrupt.
		if _, derr := copyBuffered(ctx, io.Discard, bv); derr != nil && err == nil {
			err = fmt.Errorf("%s: %w", d.Name, derr)
		}
	}
	if bv.err != nil {
		return bv.err
	}
	return err
}

// decodeTar decompresses src and writes its tar to w (see decodeLayer). The
// decompressor is closed, its goroutines stopped, when it returns.
func decodeTar(ctx context.Context, w io.Writer, src io.Reader, d layerDecode) error {
	dec, err := decompress(src, d.Compression)
	if err != nil {
		return fmt.Errorf("%s: %w", d.Name, err)
	}
	defer dec.Close()
	var tarStream io.Reader = dec
	var dv *verifier
	if d.DiffID != "" {
		dv = newVerifier(dec, d.Name+": diffID", d.DiffID, -1)
		tarStream = dv
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	if err := filterTar(ctx, bw, tarStream, d.Epoch); err != nil {
		if dv != nil && dv.err != nil {
			return dv.err
		}
		return fmt.Errorf("%s: %w", d.Name, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("%s: write tar: %w", d.Name, err)
	}
	return nil
}
