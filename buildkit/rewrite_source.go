package buildkit

// The layers the TimestampRewriter computes: a BuildKit ref's snapshots as
// a change source (bkLayer) and the new layer as lade's blob pipeline sees
// it (epochRef).

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/lade-build/lade/blobs"
	"github.com/lade-build/lade/cache"
	bkcache "github.com/moby/buildkit/cache"
	"github.com/moby/buildkit/session"
	bkprogress "github.com/moby/buildkit/util/progress"
)

// BuildKit cache metadata keys (cache/metadata.go of v0.34) that say which
// snapshot a ref's layer is diffed against, read through the exported
// RefMetadata getters.
const (
	mdParent          = "cache.parent"
	mdLowerDiffParent = "cache.lowerDiffParent"
	mdUpperDiffParent = "cache.upperDiffParent"
	mdDiffID          = "cache.diffID"
	mdBlobOnly        = "cache.blobonly"
)

// bkLayer is one layer of a BuildKit chain as BuildKit's blob pipeline
// diffs it: upper against lower (nil: an empty directory). upper is the
// ref itself, or the upper snapshot of a diff ref.
type bkLayer struct {
	upper, lower bkcache.ImmutableRef
	sg           session.Group
	// walkOnly skips the overlay upperdir differ (after it failed).
	walkOnly bool
}

// changes implements cache.ChangeSource: it mounts both snapshots
// read-only (unmounted and released when it returns) and reports their
// changes as mountedChanges does.
func (l bkLayer) changes(ctx context.Context, write cache.WriteChanges) error {
	upper, releaseUpper, err := mountsOf(ctx, l.upper, l.sg)
	if err != nil {
		return fmt.Errorf("mount snapshot %s: %w", l.upper.ID(), err)
	}
	defer releaseUpper()
	var lower []mount.Mount
	if l.lower != nil {
		var releaseLower func()
		if lower, releaseLower, err = mountsOf(ctx, l.lower, l.sg); err != nil {
			return fmt.Errorf("mount parent snapshot %s: %w", l.lower.ID(), err)
		}
		defer releaseLower()
	}
	return mountedChanges(lower, upper, l.walkOnly)(ctx, write)
}

// mountsOf returns the read-only mounts of r and their release function.
func mountsOf(ctx context.Context, r bkcache.ImmutableRef, sg session.Group) ([]mount.Mount, func(), error) {
	m, err := r.Mount(ctx, true, sg)
	if err != nil {
		return nil, nil, err
	}
	mounts, release, err := m.Mount()
	if err != nil {
		return nil, nil, err
	}
	return mounts, func() {
		if release != nil {
			_ = release()
		}
	}, nil
}

// isLazy reports whether r has a blob but no snapshot (a layer of a pulled
// image or an imported cache that was never extracted).
func isLazy(r bkcache.ImmutableRef) bool {
	v := r.Get(mdBlobOnly)
	var b bool
	return v != nil && v.Unmarshal(&b) == nil && b
}

// epochRef is one new layer as lade's blob pipeline sees it: the diff of
// a BuildKit layer (a ChangesRef) or the rewrite of a lazy layer's blob (a
// StoredRef), always computed with the epoch (never reused as stored), at
// the bottom of its own chain. Its Diff opens the layer's progress status.
type epochRef struct {
	inner cache.Ref
	name  string
	tr    *tracker
	pw    func() bkprogress.Writer

	mu   sync.Mutex
	task *layerTask
}

var (
	_ cache.Ref   = (*epochRef)(nil)
	_ cache.Layer = (*epochRef)(nil)
)

func (r *epochRef) ID() string                 { return "rewrite:" + r.inner.ID() }
func (r *epochRef) Parent() cache.Ref          { return nil }
func (r *epochRef) Description() string        { return r.inner.Description() }
func (r *epochRef) CreatedAt() time.Time       { return r.inner.CreatedAt() }
func (r *epochRef) Layer() cache.Layer         { return r }
func (r *epochRef) Stored() (cache.Blob, bool) { return cache.Blob{}, false }
func (r *epochRef) Size() int64                { return r.inner.Layer().Size() }

// Diff implements cache.Layer: the inner layer's diff, counted into
// the layer's progress status.
func (r *epochRef) Diff(ctx context.Context, opts cache.DiffOptions) (io.ReadCloser, error) {
	rc, err := r.inner.Layer().Diff(ctx, opts)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	task := &layerTask{t: r.tr, pw: r.pw(), id: r.name, started: now}
	task.write(bkprogress.Status{Started: &now})
	r.mu.Lock()
	r.task = task
	r.mu.Unlock()
	return countingReader{rc: rc, task: task}, nil
}

// finish completes the progress status opened by Diff, if any, and
// records the blob as new in this export.
func (r *epochRef) finish(p blobs.DiffPair, err error) {
	r.mu.Lock()
	task := r.task
	r.task = nil
	r.mu.Unlock()
	if task != nil {
		task.done(p.Blob.Digest, p.Blob.Size, err)
	}
}

// countingReader counts the tar bytes read into a layer's status.
type countingReader struct {
	rc   io.ReadCloser
	task *layerTask
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.rc.Read(p)
	c.task.add(int64(n))
	return n, err
}

func (c countingReader) Close() error { return c.rc.Close() }
