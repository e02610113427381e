package buildkit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/core/mount"
	cfs "github.com/containerd/continuity/fs"
	"github.com/lade-build/lade/blobs"
	ladecache "github.com/lade-build/lade/cache"
	"github.com/moby/buildkit/cache"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/util/overlay"
	"github.com/moby/buildkit/util/progress"
	digest "github.com/opencontainers/go-digest"
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
	upper, lower cache.ImmutableRef
	sg           session.Group
	// walkOnly skips the overlay upperdir differ (after it failed).
	walkOnly bool
}

// errOverlayDiff marks a failure of the overlay upperdir walk itself, after
// which the layer is diffed again by walking both trees, as BuildKit falls
// back to its walking differ.
var errOverlayDiff = errors.New("overlay upperdir differ failed")

// changes implements ladecache.ChangeSource: it mounts both snapshots
// read-only (unmounted and released when it returns) and reports their
// changes as mountedChanges does.
func (l bkLayer) changes(ctx context.Context, write ladecache.WriteChanges) error {
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

// mountedChanges is the ladecache.ChangeSource of the changes from the
// lower mounts (none: an empty directory) to the upper ones, as BuildKit's
// differs see them: the overlay upperdir when upper is one overlay layer on
// top of lower (BuildKit's overlayfs fast path, unless walkOnly), else a
// walk of both trees (BuildKit's walking differ). It mounts them read-only
// for the time of the write.
func mountedChanges(lower, upper []mount.Mount, walkOnly bool) ladecache.ChangeSource {
	return func(ctx context.Context, write ladecache.WriteChanges) error {
		if len(lower) == 0 {
			return mount.WithReadonlyTempMount(ctx, upper, func(root string) error {
				return write(root, walkTrees("", root))
			})
		}
		return mount.WithReadonlyTempMount(ctx, lower, func(lowerRoot string) error {
			if upperdir, err := overlay.GetUpperdir(lower, upper); err == nil && !walkOnly {
				written, err := overlayChanges(ctx, upperdir, lowerRoot, write)
				if written || err == nil {
					return err
				}
				// The upper view could not be mounted: walk instead.
			}
			return mount.WithReadonlyTempMount(ctx, upper, func(upperRoot string) error {
				return write(upperRoot, walkTrees(lowerRoot, upperRoot))
			})
		})
	}
}

// mountsOf returns the read-only mounts of r and their release function.
func mountsOf(ctx context.Context, r cache.ImmutableRef, sg session.Group) ([]mount.Mount, func(), error) {
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

// walkTrees walks two mounted trees (lower "" is an empty directory).
func walkTrees(lower, upper string) ladecache.WalkFunc {
	return func(ctx context.Context, fn cfs.ChangeFunc) error {
		return cfs.Changes(ctx, lower, upper, fn)
	}
}

// overlayChanges reports the changes recorded in an overlay upperdir, as
// BuildKit's overlay differ does (util/overlay.WriteUpperdir): entries are
// read from a view of the upperdir without whiteouts, mounted here, with
// the metadata the walk of the raw upperdir gives (the view shows the same
// inodes under its own device; the writer compares inodes, not devices).
// written reports whether
// write was called; when it was not, the view could not be mounted.
func overlayChanges(ctx context.Context, upperdir, lowerRoot string, write ladecache.WriteChanges) (written bool, _ error) {
	empty, err := os.MkdirTemp("", "lade-empty")
	if err != nil {
		return false, err
	}
	defer os.Remove(empty)
	view := []mount.Mount{{Type: "overlay", Source: "overlay", Options: []string{"lowerdir=" + upperdir + ":" + empty}}}
	err = mount.WithTempMount(ctx, view, func(viewRoot string) error {
		written = true
		return write(viewRoot, func(ctx context.Context, fn cfs.ChangeFunc) error {
			var fnErr error
			wrapped := func(k cfs.ChangeKind, p string, f os.FileInfo, err error) error {
				if fnErr = fn(k, p, f, err); fnErr != nil {
					return fnErr
				}
				return nil
			}
			err := overlay.Changes(ctx, wrapped, upperdir, viewRoot, lowerRoot)
			if err != nil && fnErr == nil && ctx.Err() == nil {
				return fmt.Errorf("%w: %w", errOverlayDiff, err)
			}
			return err
		})
	})
	return written, err
}

// isLazy reports whether r has a blob but no snapshot (a layer of a pulled
// image or an imported cache that was never extracted).
func isLazy(r cache.ImmutableRef) bool {
	v := r.Get(mdBlobOnly)
	var b bool
	return v != nil && v.Unmarshal(&b) == nil && b
}

// epochRef is one new layer as lade's blob pipeline sees it: the diff of
// a BuildKit layer (a ChangesRef) or the rewrite of a lazy layer's blob (a
// StoredRef), always computed with the epoch (never reused as stored), at
// the bottom of its own chain. Its Diff opens the layer's progress status.
type epochRef struct {
	inner ladecache.Ref
	name  string
	tr    *tracker
	pw    func() progress.Writer

	mu   sync.Mutex
	task *layerTask
}

var (
	_ ladecache.Ref   = (*epochRef)(nil)
	_ ladecache.Layer = (*epochRef)(nil)
)

func (r *epochRef) ID() string                     { return "rewrite:" + r.inner.ID() }
func (r *epochRef) Parent() ladecache.Ref          { return nil }
func (r *epochRef) Description() string            { return r.inner.Description() }
func (r *epochRef) CreatedAt() time.Time           { return r.inner.CreatedAt() }
func (r *epochRef) Layer() ladecache.Layer         { return r }
func (r *epochRef) Stored() (ladecache.Blob, bool) { return ladecache.Blob{}, false }
func (r *epochRef) Size() int64                    { return r.inner.Layer().Size() }

// Diff implements ladecache.Layer: the inner layer's diff, counted into
// the layer's progress status.
func (r *epochRef) Diff(ctx context.Context, opts ladecache.DiffOptions) (io.ReadCloser, error) {
	rc, err := r.inner.Layer().Diff(ctx, opts)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	task := &layerTask{t: r.tr, pw: r.pw(), id: r.name, started: now}
	task.write(progress.Status{Started: &now})
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

// epochCacheSize bounds the remembered blobs.
const epochCacheSize = 4096

// epochCacheHold is how long the cache's lease keeps its blobs from the
// garbage collector: an export to a tar or a registry leaves them owned
// by nothing else, and a rebuild with the same epoch should still find
// them. Blobs evicted from the cache leave the lease at once, and a lease
// left by a daemon that stopped expires after this.
const epochCacheHold = 24 * time.Hour

// epochCache is the rewriter's blob cache, keyed by (layer, compression,
// level, epoch): a blob made for one epoch is never used for another. Its
// blobs are held by a lease of its own (epochCacheHold). A hit is also
// added to the lease of the export asking for it before the caller checks
// that the blob is still in the store, so GC cannot remove it between the
// check and the image that references it.
type epochCache struct {
	leases leases.Manager
	mu     sync.Mutex
	m      map[string]blobs.DiffPair
	order  []string
	hold   *leases.Lease         // the cache's own lease, made on first Put
	held   map[digest.Digest]int // entries naming each blob in the lease
}

// Get implements blobs.Cache.
func (c *epochCache) Get(ctx context.Context, k blobs.Key) (blobs.DiffPair, bool, error) {
	c.mu.Lock()
	p, ok := c.m[k.String()]
	c.mu.Unlock()
	if !ok {
		return blobs.DiffPair{}, false, nil
	}
	if id, leased := leases.FromContext(ctx); leased && c.leases != nil {
		if err := c.leases.AddResource(ctx, leases.Lease{ID: id}, blobResource(p)); err != nil {
			return blobs.DiffPair{}, false, fmt.Errorf("lease blob %s: %w", p.Blob.Digest, err)
		}
	}
	return p, true, nil
}

// Put implements blobs.Cache: the blob joins the cache's lease, and the
// oldest entries beyond epochCacheSize leave both.
func (c *epochCache) Put(ctx context.Context, k blobs.Key, p blobs.DiffPair) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.holdBlob(ctx, p); err != nil {
		return err
	}
	if c.m == nil {
		c.m, c.held = map[string]blobs.DiffPair{}, map[digest.Digest]int{}
	}
	ks := k.String()
	if old, ok := c.m[ks]; ok {
		c.release(ctx, old)
	} else {
		c.order = append(c.order, ks)
	}
	c.m[ks] = p
	c.held[p.Blob.Digest]++
	for len(c.order) > epochCacheSize {
		c.release(ctx, c.m[c.order[0]])
		delete(c.m, c.order[0])
		c.order = c.order[1:]
	}
	return nil
}

// release drops one entry's claim on its blob; the last one takes the
// blob out of the cache's lease. c.mu is held.
func (c *epochCache) release(ctx context.Context, p blobs.DiffPair) {
	d := p.Blob.Digest
	if c.held[d]--; c.held[d] > 0 {
		return
	}
	delete(c.held, d)
	if c.hold != nil {
		_ = c.leases.DeleteResource(context.WithoutCancel(ctx), *c.hold, blobResource(p))
	}
}

// purge forgets every entry and deletes the cache's lease, so that the
// garbage collector may take blobs nothing else holds.
func (c *epochCache) purge(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m, c.order, c.held = nil, nil, nil
	if c.hold == nil {
		return nil
	}
	err := c.leases.Delete(context.WithoutCancel(ctx), *c.hold)
	c.hold = nil
	if err != nil {
		return fmt.Errorf("delete the rewrite-timestamp blob cache's lease: %w", err)
	}
	return nil
}

// holdBlob adds p's blob to the cache's lease, making the lease first.
func (c *epochCache) holdBlob(ctx context.Context, p blobs.DiffPair) error {
	if c.leases == nil {
		return nil
	}
	ctx = context.WithoutCancel(ctx)
	if c.hold == nil {
		l, err := c.leases.Create(ctx, leases.WithRandomID(), leases.WithExpiration(epochCacheHold),
			leases.WithLabel("lade.build/lease", "rewrite-timestamp blob cache"))
		if err != nil {
			return fmt.Errorf("lease for the rewrite-timestamp blob cache: %w", err)
		}
		c.hold = &l
	}
	if err := c.leases.AddResource(ctx, *c.hold, blobResource(p)); err != nil {
		return fmt.Errorf("hold blob %s in the rewrite-timestamp blob cache: %w", p.Blob.Digest, err)
	}
	return nil
}

// blobResource is p's blob as a lease resource.
func blobResource(p blobs.DiffPair) leases.Resource {
	return leases.Resource{ID: p.Blob.Digest.String(), Type: "content"}
}
