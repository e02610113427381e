package archive

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/lade-build/lade/cache"
	"github.com/lade-build/lade/progress"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// File is a small file written into an archive, such as manifest.json.
type File struct {
	// Name is the slash-separated path inside the archive.
	Name string
	// Data is the whole content.
	Data []byte
}

// TarWriter writes deterministic tar entries: every entry has the same
// modification time, uid and gid 0, no user or group names, mode 0644 for
// files and 0755 for directories.
type TarWriter struct {
	tw    *tar.Writer
	mtime time.Time
	chunk int // see SetChunk; 0 for CopyBlob's chunks
}

// SetChunk makes Blob write a blob's content in writes of at most n bytes
// instead of CopyBlob's 1 MiB. A writer that copies each write into a
// buffer of its own (a gRPC stream: one message per write) then holds
// n-byte buffers: 32 KiB and under fit gRPC's small pooled buffers, where
// anything between 32 KiB and 1 MiB takes a 1 MiB one.
func (t *TarWriter) SetChunk(n int) {
	t.chunk = n
}

// NewTarWriter returns a TarWriter on w whose entries carry mtime, truncated
// to the second (the Unix epoch when mtime is zero).
func NewTarWriter(w io.Writer, mtime time.Time) *TarWriter {
	if mtime.IsZero() {
		mtime = time.Unix(0, 0)
	}
	return &TarWriter{tw: tar.NewWriter(w), mtime: mtime.Truncate(time.Second).UTC()}
}

// header returns a deterministic tar header.
func (t *TarWriter) header(name string, typ byte, mode, size int64) *tar.Header {
	return &tar.Header{Name: name, Typeflag: typ, Mode: mode, Size: size, ModTime: t.mtime}
}

// Dir writes a directory entry; name should end in "/".
func (t *TarWriter) Dir(name string) error {
	if err := t.tw.WriteHeader(t.header(name, tar.TypeDir, 0o755, 0)); err != nil {
		return fmt.Errorf("write tar entry %s: %w", name, err)
	}
	return nil
}

// File writes a regular file holding data.
func (t *TarWriter) File(name string, data []byte) error {
	if err := t.tw.WriteHeader(t.header(name, tar.TypeReg, 0o644, int64(len(data)))); err != nil {
		return fmt.Errorf("write tar entry %s: %w", name, err)
	}
	if _, err := t.tw.Write(data); err != nil {
		return fmt.Errorf("write tar entry %s: %w", name, err)
	}
	return nil
}

// Blob writes b under its BlobPath, from b.Data or streamed (and verified)
// from p. The header is written only after the provider confirmed the size;
// a digest mismatch is found after the bytes went out, so on any error the
// whole tar stream must be discarded.
func (t *TarWriter) Blob(ctx context.Context, p content.Provider, b Blob, onBytes func(int64)) error {
	return t.blob(ctx, p, b, copyOpts{onBytes: onBytes})
}

// SealedBlob is Blob for a blob this process has just written to p,
// hashing its bytes to b.Desc.Digest as they were written, and taking
// their CRC-32C (Castagnoli) crc in the same pass: the bytes read back are
// checked against crc instead of being hashed again (CRCWriter takes it).
func (t *TarWriter) SealedBlob(ctx context.Context, p content.Provider, b Blob, crc uint32, onBytes func(int64)) error {
	return t.blob(ctx, p, b, copyOpts{onBytes: onBytes, check: newCRCCheck(crc)})
}

func (t *TarWriter) blob(ctx context.Context, p content.Provider, b Blob, o copyOpts) error {
	name := BlobPath(b.Desc.Digest)
	if b.Data != nil {
		if err := t.File(name, b.Data); err != nil {
			return err
		}
		if o.onBytes != nil {
			o.onBytes(int64(len(b.Data)))
		}
		return nil
	}
	ra, err := p.ReaderAt(ctx, b.Desc)
	if err != nil {
		return fmt.Errorf("open blob %s: %w", b.Desc.Digest, err)
	}
	size := ra.Size()
	ra.Close()
	if size != b.Desc.Size {
		return fmt.Errorf("blob %s: found %d bytes, want %d: %w", b.Desc.Digest, size, b.Desc.Size, cache.ErrSizeMismatch)
	}
	if err := t.tw.WriteHeader(t.header(name, tar.TypeReg, 0o644, b.Desc.Size)); err != nil {
		return fmt.Errorf("write tar entry %s: %w", name, err)
	}
	o.chunk = t.chunk
	return copyBlob(ctx, p, b.Desc, t.tw, o)
}

// Close writes the tar footer. It does not close the underlying writer.
func (t *TarWriter) Close() error {
	if err := t.tw.Close(); err != nil {
		return fmt.Errorf("finish tar: %w", err)
	}
	return nil
}

// WriteLayoutTar writes g as an OCI image layout into t, in this order:
// oci-layout, the blobs directories, every blob of g children-first, the
// extra files (e.g. manifest.json), and index.json last. Each blob is a
// progress vertex under idPrefix. It does not close t.
func WriteLayoutTar(ctx context.Context, t *TarWriter, p content.Provider, g *Graph, index []byte, extra []File, pw progress.Writer, idPrefix string) error {
	if err := t.File(ocispec.ImageLayoutFile, LayoutFile()); err != nil {
		return err
	}
	if err := t.Dir(ocispec.ImageBlobsDir + "/"); err != nil {
		return err
	}
	var algs []string
	for _, b := range g.Blobs {
		if a := b.Desc.Digest.Algorithm().String(); !slices.Contains(algs, a) {
			algs = append(algs, a)
		}
	}
	slices.Sort(algs)
	for _, a := range algs {
		if err := t.Dir(ocispec.ImageBlobsDir + "/" + a + "/"); err != nil {
			return err
		}
	}
	for _, b := range g.Blobs {
		task := StartTask(pw, idPrefix, "writing", b.Desc)
		if err := Finish(task, "written", t.Blob(ctx, p, b, task.Add)); err != nil {
			return err
		}
	}
	for _, f := range extra {
		if err := t.File(f.Name, f.Data); err != nil {
			return err
		}
	}
	return t.File(ocispec.ImageIndexFile, index)
}
