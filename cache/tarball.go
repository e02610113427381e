package cache

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	digest "github.com/opencontainers/go-digest"
)

// TarballOptions are the optional inputs of NewTarballRef. The zero value
// is valid.
type TarballOptions struct {
	// Description is the history "created_by" for the layer; empty means
	// "lade: layer tarball <base name>".
	Description string
	// CreatedAt is the history "created" for the layer; zero when unknown.
	CreatedAt time.Time
	// DiffID, when set, is the expected digest of the uncompressed tar:
	// reading a diff to EOF verifies it.
	DiffID digest.Digest
}

// TarballRef is a layer read from a tar file, plain, gzip or zstd
// compressed (told by its magic bytes, not its name). It implements Ref and
// Layer.
type TarballRef struct {
	path   string
	parent Ref
	opts   TarballOptions
	id     string
	size   int64
}

var (
	_ Ref   = (*TarballRef)(nil)
	_ Layer = (*TarballRef)(nil)
)

// NewTarballRef returns the layer in the tar file at path on top of parent
// (nil at the bottom). path must be a regular file; it is made absolute. The
// file must not change while the ref is in use: its ID is computed now from
// its metadata.
func NewTarballRef(path string, parent Ref, opts TarballOptions) (*TarballRef, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("layer tarball %s: %w", path, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("layer tarball %s: %w", abs, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("layer tarball %s: not a regular file (%s)", abs, fi.Mode().Type())
	}
	if opts.DiffID != "" {
		if err := opts.DiffID.Validate(); err != nil {
			return nil, fmt.Errorf("layer tarball %s: diffID %q: %w", abs, opts.DiffID, err)
		}
	}
	if opts.Description == "" {
		opts.Description = "lade: layer tarball " + filepath.Base(abs)
	}
	r := &TarballRef{path: abs, parent: parent, opts: opts, size: fi.Size()}
	r.id = "tarball:" + tarballID(r, fi).String()
	return r, nil
}

// tarballID hashes the parent's ID, the file's path and metadata and the
// expected diffID.
func tarballID(r *TarballRef, fi os.FileInfo) digest.Digest {
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	parentID := ""
	if r.parent != nil {
		parentID = r.parent.ID()
	}
	h := sha256.New()
	fmt.Fprintf(h, "lade tarball v1\nparent %q\npath %q\nsize %d\nmtime %d\ninode %d\ndiffID %q\n",
		parentID, r.path, fi.Size(), fi.ModTime().UnixNano(), ino, r.opts.DiffID)
	return digest.NewDigest(digest.SHA256, h)
}

// Path returns the absolute path of the tarball.
func (r *TarballRef) Path() string { return r.path }

// ID returns "tarball:" and a sha256 over the parent's ID, the absolute
// path, size, mtime and inode of the file and the expected diffID.
func (r *TarballRef) ID() string { return r.id }

// Parent returns the ref below, nil at the bottom.
func (r *TarballRef) Parent() Ref { return r.parent }

// Description returns the history "created_by" of the layer.
func (r *TarballRef) Description() string { return r.opts.Description }

// CreatedAt returns the history "created" of the layer, zero when unknown.
func (r *TarballRef) CreatedAt() time.Time { return r.opts.CreatedAt }

// Layer returns r itself.
func (r *TarballRef) Layer() Layer { return r }

// Stored returns ok=false: a tarball's blob is computed from its diff.
func (r *TarballRef) Stored() (Blob, bool) { return Blob{}, false }

// Size returns the file size: the uncompressed size is unknown until read.
func (r *TarballRef) Size() int64 { return r.size }

// Diff opens the file and streams its decompressed tar. Entries with an
// absolute name or a ".." element (or such a hard link target) stop the
// stream with an error. Without opts.Epoch the bytes are the file's tar as
// it is; with it, the tar is re-written with timestamps clamped. The expected
// diffID (of the file's tar, before clamping) is verified at EOF.
func (r *TarballRef) Diff(ctx context.Context, opts DiffOptions) (io.ReadCloser, error) {
	f, err := os.Open(r.path)
	if err != nil {
		return nil, fmt.Errorf("layer tarball %s: %w", r.path, err)
	}
	epoch := cloneTime(opts.Epoch)
	return newPipeStream(ctx, func(ctx context.Context, w io.Writer) error {
		defer f.Close()
		name := "layer tarball " + r.path
		br := bufio.NewReaderSize(f, 64<<10)
		c, err := detectCompression(br)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return decodeLayer(ctx, w, br, layerDecode{
			Name:        name,
			Compression: c,
			DiffID:      r.opts.DiffID,
			Epoch:       epoch,
		})
	}), nil
}
