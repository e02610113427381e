package main

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
)

// The daemons' bbolt databases in the page cache (issue #17, peak RSS).
// BuildKit maps its databases and reads them through the mapping; a page
// the process touches counts in its RSS with the whole folio of the page
// cache that holds it. Pages a daemon wrote (bbolt writes with pwrite) are
// cached in folios of up to 2 MiB, so the same read of a build context's
// content-hash record (4.3 MB in metadata_v2.db at scale 1, read when the
// first COPY is hashed, at both daemons' peak) left 4.3 to 8.2 MiB resident
// from one round to the next, in either daemon, depending only on where
// earlier rounds' writes put it. Evicting the databases' cached pages
// before each measured daemon starts and again before its build makes the
// daemons read them back page by page (bbolt advises random access), so
// each maps what it reads: 4.3-4.5 MiB in every round of either daemon.

// dropDBCache is the --drop-db-cache flag.
var dropDBCache = flag.Bool("drop-db-cache", true, "evict the page cache of each daemon's bolt databases before each measured daemon start and build, so that their file pages in the peak RSS are the pages the daemon reads, not the page cache's folios around them")

// startEvicted evicts d's databases from the page cache and starts d. The
// eviction must come before the start too: a daemon maps its databases'
// first pages at start, which pins the folio holding them (up to 2 MiB of
// the file) in the cache.
func startEvicted(ctx context.Context, d *daemon) error {
	if err := dropDBPageCache(d.root); err != nil {
		return err
	}
	return d.start(ctx)
}

// dbGlobs are the daemons' database files, relative to their root: the
// solver cache, history and lease/content metadata (root), the worker's
// cache metadata and containerd metadata (runc-overlayfs), the
// snapshotter's (runc-overlayfs/snapshots).
var dbGlobs = []string{"*.db", "*/*.db", "*/snapshots/*.db"}

// dropDBPageCache evicts the clean, unmapped cached pages of the
// databases under a daemon's root; pages the daemon has mapped stay.
func dropDBPageCache(root string) error {
	if !*dropDBCache {
		return nil
	}
	for _, g := range dbGlobs {
		paths, err := filepath.Glob(filepath.Join(root, g))
		if err != nil {
			return fmt.Errorf("drop database page cache: %w", err)
		}
		for _, p := range paths {
			if err := dropFilePageCache(p); err != nil {
				return err
			}
		}
	}
	return nil
}
