package buildkit

// The change walkers shared by the Differ (differ.go) and the
// TimestampRewriter (rewrite*.go): both report a layer's changes the way
// BuildKit's differs see them, from mounted snapshots.

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/containerd/containerd/v2/core/mount"
	cfs "github.com/containerd/continuity/fs"
	"github.com/lade-build/lade/cache"
	bkoverlay "github.com/moby/buildkit/util/overlay"
)

// errOverlayDiff marks a failure of the overlay upperdir diff (its walk,
// or reading an entry), after which the layer is diffed again by walking
// both trees, as BuildKit falls back to its walking differ.
var errOverlayDiff = errors.New("overlay upperdir differ failed")

// mountedChanges is the cache.ChangeSource of the changes from the
// lower mounts (none: an empty directory) to the upper ones, as BuildKit's
// differs see them: the overlay upperdir when upper is one overlay layer on
// top of lower (BuildKit's overlayfs fast path, unless walkOnly), else a
// walk of both trees (BuildKit's walking differ). It mounts them read-only
// for the time of the write.
func mountedChanges(lower, upper []mount.Mount, walkOnly bool) cache.ChangeSource {
	return func(ctx context.Context, write cache.WriteChanges) error {
		if len(lower) == 0 {
			return mount.WithReadonlyTempMount(ctx, upper, func(root string) error {
				return write(root, walkTrees("", root))
			})
		}
		return mount.WithReadonlyTempMount(ctx, lower, func(lowerRoot string) error {
			if upperdir, err := bkoverlay.GetUpperdir(lower, upper); err == nil && !walkOnly {
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

// walkTrees walks two mounted trees (lower "" is an empty directory:
// cache.WalkTree, continuity's single walk for fewer system calls).
func walkTrees(lower, upper string) cache.WalkFunc {
	if lower == "" {
		return cache.WalkTree(upper)
	}
	return func(ctx context.Context, fn cfs.ChangeFunc) error {
		return cfs.Changes(ctx, lower, upper, fn)
	}
}

// overlayChanges reports the changes recorded in an overlay upperdir, as
// BuildKit's overlay differ does (util/overlay.WriteUpperdir): the walk is
// cache.UpperdirWalk (BuildKit's Changes with fewer system calls) and
// entries are read from a view of the upperdir without whiteouts, mounted
// here, or from the upperdir itself where that reads the same. written
// reports whether write was called; when it was not, the view could not be
// mounted. Any failure of the overlay diff (the walk's, or reading an
// entry, as for a metacopy file the view refuses) is errOverlayDiff, after
// which the layer is walked as two trees, as BuildKit falls back from its
// overlay differ on any error.
func overlayChanges(ctx context.Context, upperdir, lowerRoot string, write cache.WriteChanges) (written bool, _ error) {
	empty, err := os.MkdirTemp("", "lade-empty")
	if err != nil {
		return false, err
	}
	defer os.Remove(empty)
	opts := []string{"lowerdir=" + upperdir + ":" + empty}
	if _, err := os.Stat("/sys/module/overlay/parameters/index"); err == nil {
		// As BuildKit mounts its view: the upperdir may be another
		// mount's upper, which a view with the index on refuses (EBUSY).
		opts = append(opts, "index=off")
	}
	view := []mount.Mount{{Type: "overlay", Source: "overlay", Options: opts}}
	err = mount.WithTempMount(ctx, view, func(viewRoot string) error {
		written = true
		return write(viewRoot, cache.UpperdirWalk(upperdir, viewRoot, lowerRoot))
	})
	if written && err != nil && ctx.Err() == nil {
		return true, fmt.Errorf("%w: %w", errOverlayDiff, err)
	}
	return written, err
}
