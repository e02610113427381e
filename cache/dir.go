package cache

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	cfs "github.com/containerd/continuity/fs"
	digest "github.com/opencontainers/go-digest"
)

// DirOptions are the optional inputs of NewDirRef. The zero value is valid.
type DirOptions struct {
	// Description is the history "created_by" for the layer; empty means
	// "lade: directory <base name>".
	Description string
	// CreatedAt is the history "created" for the layer; zero when unknown.
	CreatedAt time.Time
	// Lower is the snapshot the layer is diffed against when the parent is
	// not a directory snapshot (e.g. directories on top of a base image's
	// stored layers); nil then means an empty directory. When the parent is
	// a *DirRef and Lower is nil, the parent is the lower directory.
	Lower *DirRef
}

// DirRef is a directory snapshot: its directory holds a full root
// filesystem and its layer is the diff against the parent's directory (or
// against an empty directory at the bottom of the chain). It implements Ref
// and Layer.
type DirRef struct {
	dir    string
	parent Ref
	lower  *DirRef
	opts   DirOptions

	once sync.Once
	id   string
	size int64
}

var (
	_ Ref   = (*DirRef)(nil)
	_ Layer = (*DirRef)(nil)
)

// NewDirRef returns the snapshot of directory dir on top of parent. The
// layer is the diff against opts.Lower, or against parent when it is a
// *DirRef, or else against an empty directory (the layer holds all of dir).
// dir must exist
// and be a directory; it is made absolute. The directories must not change
// while the ref is in use: ID and Size are computed once, and Diff reads them.
func NewDirRef(dir string, parent Ref, opts DirOptions) (*DirRef, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("directory snapshot %s: %w", dir, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("directory snapshot %s: %w", abs, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("directory snapshot %s: not a directory (%s)", abs, fi.Mode().Type())
	}
	r := &DirRef{dir: abs, opts: opts, lower: opts.Lower}
	switch p := parent.(type) {
	case nil:
	case *DirRef:
		if p != nil { // a typed nil stays nil
			r.parent = p
			if r.lower == nil {
				r.lower = p
			}
		}
	default:
		r.parent = parent
	}
	if r.opts.Description == "" {
		r.opts.Description = "lade: directory " + filepath.Base(abs)
	}
	return r, nil
}

// Dir returns the absolute path of the snapshot's directory.
func (r *DirRef) Dir() string { return r.dir }

// ID returns "dir:" and a sha256 over the lower snapshot's ID and the metadata of
// every entry of the tree (relative path, mode, size, mtime and ctime in
// nanoseconds, uid, gid, inode, device number, symlink target); file
// contents are never read. It is computed once, on first use. If the tree
// cannot be walked, ID returns an identity unique to this ref, so the blob
// cache never matches it, and Diff reports the error.
func (r *DirRef) ID() string {
	r.once.Do(r.identify)
	return r.id
}

// Parent returns the parent snapshot, nil at the bottom.
func (r *DirRef) Parent() Ref {
	if r.parent == nil {
		return nil
	}
	return r.parent
}

// Description returns the history "created_by" of the layer.
func (r *DirRef) Description() string { return r.opts.Description }

// CreatedAt returns the history "created" of the layer, zero when unknown.
func (r *DirRef) CreatedAt() time.Time { return r.opts.CreatedAt }

// Layer returns r itself.
func (r *DirRef) Layer() Layer { return r }

// Stored returns ok=false: a snapshot's blob is computed from its diff.
func (r *DirRef) Stored() (Blob, bool) { return Blob{}, false }

// Size returns the sum of the sizes of the regular files of the whole tree
// (each inode once), from the same walk as ID; 0 if it cannot be walked.
func (r *DirRef) Size() int64 {
	r.once.Do(r.identify)
	return r.size
}

// Diff streams the layer: the changes from the parent's directory to this
// one (continuity's fs.Changes) as an OCI layer tar, written by a goroutine.
// Errors, including a done ctx, are returned by Read; Close stops the
// goroutine and waits for it.
//
// The tar is byte for byte containerd's archive.WriteDiff (so diffIDs match
// BuildKit's) for trees without xattrs other than security.capability: PAX
// headers without user or group names, mtimes clamped to opts.Epoch then
// truncated to whole seconds, no atime or ctime, ".wh.<name>" whiteouts with
// zero timestamps, parents of changes included, hard links to the first name
// written, sockets skipped. What lade does differently (see DIFF.md):
//   - all xattrs are kept (every namespace, as SCHILY.xattr.* PAX records),
//     where containerd keeps only security.capability;
//   - files are read relative to the root without following symlinks.
//
// Limits shared with containerd: sparse files are written dense (archive/tar
// writes no sparse entries); a directory deleted and recreated between two
// snapshots becomes per-entry whiteouts, never an opaque marker, since plain
// directories cannot tell a replaced directory from an edited one (applied,
// it gives the same tree).
func (r *DirRef) Diff(ctx context.Context, opts DiffOptions) (io.ReadCloser, error) {
	lower := ""
	if r.lower != nil {
		lower = r.lower.dir
	}
	epoch := cloneTime(opts.Epoch)
	return newPipeStream(ctx, func(ctx context.Context, w io.Writer) error {
		if err := writeDirDiff(ctx, w, lower, r.dir, epoch); err != nil {
			return fmt.Errorf("diff directory %s: %w", r.dir, err)
		}
		return nil
	}), nil
}

// dirRefErrors numbers refs whose tree could not be walked.
var dirRefErrors atomic.Uint64

// identify computes the ID and size.
func (r *DirRef) identify() {
	lowerID := ""
	if r.lower != nil {
		lowerID = r.lower.ID()
	}
	sum, size, err := hashTree(r.dir, lowerID)
	if err != nil {
		r.id = fmt.Sprintf("dir:unidentified:%d:%s", dirRefErrors.Add(1), r.dir)
		return
	}
	r.id, r.size = "dir:"+sum.String(), size
}

// hashTree hashes the metadata of every entry under dir and sums the sizes
// of its regular files, each inode once.
func hashTree(dir, parentID string) (digest.Digest, int64, error) {
	h := sha256.New()
	fmt.Fprintf(h, "lade dir v1\nparent %q\n", parentID)
	var size int64
	seen := map[uint64]struct{}{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return errors.New("no stat data for " + p)
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		var link string
		if fi.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		fmt.Fprintf(h, "%q %o %d %d %d %d %d %d %d %q\n", filepath.ToSlash(rel), st.Mode, st.Size,
			st.Mtim.Nano(), st.Ctim.Nano(), st.Uid, st.Gid, st.Ino, st.Rdev, link)
		if fi.Mode().IsRegular() {
			if _, dup := seen[st.Ino]; !dup {
				seen[st.Ino] = struct{}{}
				size += st.Size
			}
		}
		return nil
	})
	if err != nil {
		return "", 0, fmt.Errorf("walk %s: %w", dir, err)
	}
	return digest.NewDigest(digest.SHA256, h), size, nil
}

// writeDirDiff writes the OCI layer tar of the changes from lower to upper
// (lower "" means an empty directory: the single walk of WalkTree).
func writeDirDiff(ctx context.Context, w io.Writer, lower, upper string, epoch *time.Time) error {
	walk := WalkTree(upper)
	if lower != "" {
		walk = func(ctx context.Context, fn cfs.ChangeFunc) error {
			return cfs.Changes(ctx, lower, upper, fn)
		}
	}
	return writeChanges(ctx, w, upper, epoch, false, walk)
}
