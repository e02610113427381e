package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	cfs "github.com/containerd/continuity/fs"
)

// WalkFunc reports the changes of one layer to fn the way continuity's
// fs.Changes does: in lexical path order, each path relative to the root
// with a leading separator. For every change but a deletion, the FileInfo
// must describe the entry under the root given to the writer as Lstat
// does (the same inode, size, modification time and type; the device may
// differ, as for an overlay view of a walked upperdir): the writer reads
// the entry from that root and refuses a different file (UpperdirWalk's
// entries are read from their upperdir, see there). A WalkFunc returns
// fn's first error.
type WalkFunc func(ctx context.Context, fn cfs.ChangeFunc) error

// WriteChanges writes the layer tar of the changes walk reports, reading
// entries from root. A ChangeSource calls it once.
type WriteChanges func(root string, walk WalkFunc) error

// ChangeSource prepares what one diff of a layer needs (for example, mounts
// of a snapshot and of its parent), calls write exactly once with the
// directory the entries are read from and the walk of the changes, then
// releases what it prepared, and returns write's error (or its own). It is
// called once per Diff, from the goroutine producing the stream, and must
// return once ctx is done.
type ChangeSource func(ctx context.Context, write WriteChanges) error

// ChangesOptions are the optional inputs of NewChangesRef. The zero value is
// valid.
type ChangesOptions struct {
	// Parent is the ref below; nil at the bottom of a chain.
	Parent Ref
	// Description is the history "created_by" for the layer; empty means
	// "lade: changes <id>".
	Description string
	// CreatedAt is the history "created" for the layer; zero when unknown.
	CreatedAt time.Time
	// Size is a hint of the layer's uncompressed size; 0 when unknown.
	Size int64
	// OnlyCapabilityXattr writes only the security.capability xattr, as
	// containerd's archive and so BuildKit's differs do (its diffIDs,
	// where files carry security.selinux or user.* xattrs); by default
	// every xattr is kept.
	OnlyCapabilityXattr bool
}

// ChangesRef is a layer whose changes come from a caller's ChangeSource:
// the snapshots of another system (a BuildKit ref and its parent, mounted,
// walked as two trees or through an overlay upperdir). It writes the same
// tar as DirRef for the same changes, timestamps clamped in the same pass.
// It implements Ref and Layer.
type ChangesRef struct {
	id   string
	src  ChangeSource
	opts ChangesOptions
}

var (
	_ Ref   = (*ChangesRef)(nil)
	_ Layer = (*ChangesRef)(nil)
)

// NewChangesRef returns the layer whose changes src reports. id is its
// identity for the blob cache: the caller guarantees that two refs with the
// same id have the same changes (for example, an immutable snapshot's ID).
func NewChangesRef(id string, src ChangeSource, opts ChangesOptions) (*ChangesRef, error) {
	if id == "" {
		return nil, errors.New("changes ref: empty ID")
	}
	if src == nil {
		return nil, fmt.Errorf("changes ref %s: no change source", id)
	}
	if opts.Description == "" {
		opts.Description = "lade: changes " + id
	}
	return &ChangesRef{id: id, src: src, opts: opts}, nil
}

// ID returns the identity given to NewChangesRef.
func (r *ChangesRef) ID() string { return r.id }

// Parent returns the ref below, nil at the bottom.
func (r *ChangesRef) Parent() Ref { return r.opts.Parent }

// Description returns the history "created_by" of the layer.
func (r *ChangesRef) Description() string { return r.opts.Description }

// CreatedAt returns the history "created" of the layer, zero when unknown.
func (r *ChangesRef) CreatedAt() time.Time { return r.opts.CreatedAt }

// Layer returns r itself.
func (r *ChangesRef) Layer() Layer { return r }

// Stored returns ok=false: the blob is computed from the changes.
func (r *ChangesRef) Stored() (Blob, bool) { return Blob{}, false }

// Size returns the size hint given in ChangesOptions.
func (r *ChangesRef) Size() int64 { return r.opts.Size }

// Diff streams the layer tar, written by a goroutine that runs the change
// source: the format is DirRef's (containerd's ChangeWriter, every xattr
// kept unless OnlyCapabilityXattr, mtimes clamped to opts.Epoch then truncated to seconds). The
// source's error, or a source that never called write, is returned by
// Read; the source has released what it prepared before Read returns EOF.
// Close stops the goroutine and waits for it.
func (r *ChangesRef) Diff(ctx context.Context, opts DiffOptions) (io.ReadCloser, error) {
	epoch := cloneTime(opts.Epoch)
	return newPipeStream(ctx, func(ctx context.Context, w io.Writer) error {
		written := false
		err := r.src(ctx, func(root string, walk WalkFunc) error {
			if written {
				return errors.New("change source wrote the layer twice")
			}
			written = true
			return writeChanges(ctx, w, root, epoch, r.opts.OnlyCapabilityXattr, walk)
		})
		if err == nil && !written {
			err = errors.New("change source did not write the layer")
		}
		if err != nil {
			return fmt.Errorf("diff %s: %w", r.id, err)
		}
		return nil
	}), nil
}

// writeChanges writes the OCI layer tar of the changes walk reports,
// reading entries from root, with every xattr or, with onlyCap, only
// security.capability.
func writeChanges(ctx context.Context, w io.Writer, root string, epoch *time.Time, onlyCap bool, walk WalkFunc) error {
	rfs, err := openTrees(root, onlyCap)
	if err != nil {
		return err
	}
	defer rfs.Close()
	bw := newBlockWriter(w)
	defer bw.release()
	cw := newChangeWriter(bw, rfs, epoch)
	if onlyCap {
		cw.keepXattr = onlyCapability
	}
	if err := writeChangesReadAhead(ctx, cw, root, walk); err != nil {
		return err
	}
	if err := cw.Close(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write tar: %w", err)
	}
	return nil
}
