package oci

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/lade-build/lade/exporter/archive"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// writeBlob puts one blob of the graph into the layout dir, unless a
// correct copy is already there.
func writeBlob(ctx context.Context, p content.Provider, b archive.Blob, dir string, opts Options) error {
	task := archive.StartTask(opts.Progress, "oci-layout", "writing", b.Desc)
	final := filepath.Join(dir, filepath.FromSlash(archive.BlobPath(b.Desc.Digest)))
	ok, err := hasBlob(final, b.Desc)
	if err != nil {
		return archive.Finish(task, "", err)
	}
	if ok {
		return archive.Finish(task, "exists", nil)
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return archive.Finish(task, "", fmt.Errorf("create blobs directory: %w", err))
	}
	err = atomicWrite(final, func(w io.Writer) error {
		if b.Data != nil {
			_, err := io.Copy(w, bytes.NewReader(b.Data))
			task.Add(int64(len(b.Data)))
			return err
		}
		return archive.CopyBlob(ctx, p, b.Desc, w, task.Add)
	})
	return archive.Finish(task, "written", err)
}

// hasBlob reports whether path is a regular file holding exactly desc's
// content. A wrong file (size or digest) reports false, to be replaced.
func hasBlob(path string, desc ocispec.Descriptor) (bool, error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("check blob %s: %w", desc.Digest, err)
	}
	if !fi.Mode().IsRegular() || fi.Size() != desc.Size {
		return false, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("check blob %s: %w", desc.Digest, err)
	}
	defer f.Close()
	v := desc.Digest.Verifier()
	if _, err := io.Copy(v, f); err != nil {
		return false, fmt.Errorf("check blob %s: %w", desc.Digest, err)
	}
	return v.Verified(), nil
}

// atomicWrite writes final through a temporary file in its directory: fill
// writes the content, which is synced, made 0644 and renamed to final only
// if fill succeeded. The temporary file never survives an error.
func atomicWrite(final string, fill func(io.Writer) error) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(final), ".tmp-"+filepath.Base(final)+"-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", final, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := fill(tmp); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", final, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("write %s: %w", final, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", final, err)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return fmt.Errorf("write %s: %w", final, err)
	}
	return nil
}

// writeFileAtomic replaces dir/name with data, atomically.
func writeFileAtomic(dir, name string, data []byte) error {
	return atomicWrite(filepath.Join(dir, name), func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// syncDir flushes dir's entries (the renames) to disk.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
