package imagestore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
)

// PruneStats counts what Prune removed.
type PruneStats struct {
	// Leases is the number of expired or orphaned leases deleted.
	Leases int
	// Blobs and Bytes count the blobs removed from disk and their sizes.
	Blobs int
	Bytes int64
	// CacheEntries is the number of blob-cache entries dropped.
	CacheEntries int
}

// Prune deletes expired leases, then runs containerd's garbage collector:
// content not reachable from an image (through gc.ref.content labels of
// manifests and indexes) nor held by a lease is removed. It also removes blob
// files the database no longer knows (left by a crashed process or a delete
// in another process) and drops blob-cache entries whose blob is gone.
//
// Prune takes the root lock exclusively: it waits, bounded by ctx, until
// every other Store open on the root (a running export, in this process or
// another) is closed, and new Opens wait for it. A Store of this process left
// open on the same root therefore blocks Prune until ctx is done.
func (s *Store) Prune(ctx context.Context) (PruneStats, error) {
	if err := s.lockExclusive(ctx); err != nil {
		return PruneStats{}, err
	}
	defer s.lockShared()
	var st PruneStats
	before, err := s.backendSizes(ctx)
	if err != nil {
		return st, err
	}
	if st.Leases, err = s.deleteExpiredLeases(ctx); err != nil {
		return st, err
	}
	if _, err := s.db.GarbageCollect(ns(ctx)); err != nil {
		return st, fmt.Errorf("garbage collect: %w", err)
	}
	if err := s.removeOrphans(ctx); err != nil {
		return st, err
	}
	after, err := s.backendSizes(ctx)
	if err != nil {
		return st, err
	}
	for d, size := range before {
		if _, ok := after[d]; !ok {
			st.Blobs++
			st.Bytes += size
		}
	}
	st.CacheEntries, err = s.pruneBlobCache(ctx)
	return st, err
}

// lockExclusive trades the Store's shared root lock for an exclusive one.
// flock(2) converts a lock by dropping it first, so the shared lock is
// released explicitly and the exclusive one taken with retries.
func (s *Store) lockExclusive(ctx context.Context) error {
	s.lockMu.Lock()
	defer s.lockMu.Unlock()
	if s.closed {
		return fmt.Errorf("prune: %w", errClosed)
	}
	if err := s.lock.Unlock(); err != nil {
		return fmt.Errorf("prune: unlock store: %w", err)
	}
	ok, err := s.lock.TryLockContext(ctx, lockRetry)
	if err != nil || !ok {
		s.relockShared()
		return fmt.Errorf("prune: wait for other users of %s: %w", s.root, errors.Join(err, ctx.Err()))
	}
	return nil
}

// lockShared returns from Prune's exclusive lock to the shared one.
func (s *Store) lockShared() {
	s.lockMu.Lock()
	defer s.lockMu.Unlock()
	_ = s.lock.Unlock()
	s.relockShared()
}

// relockShared takes the shared lock back, waiting as long as needed: only
// another Prune can hold the lock exclusively, and it ends. Called with
// s.lockMu held and the lock released.
func (s *Store) relockShared() {
	// Without a lock the Store still works; it is just not protected from a
	// concurrent Prune. RLock fails only on I/O errors of the lock file.
	_ = s.lock.RLock()
}

// backendSizes lists the blobs on disk with their sizes.
func (s *Store) backendSizes(ctx context.Context) (map[digest.Digest]int64, error) {
	sizes := map[digest.Digest]int64{}
	err := s.backend.Walk(ctx, func(info content.Info) error {
		sizes[info.Digest] = info.Size
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return sizes, nil // nothing was ever written
	}
	if err != nil {
		return nil, fmt.Errorf("walk content: %w", err)
	}
	return sizes, nil
}

// removeOrphans deletes blob files the metadata database does not know.
// containerd's GC only sweeps files after it removed a record itself in the
// same process; records deleted elsewhere leave files behind. Digests an
// ingest expects to reuse are kept. Runs under the exclusive lock, so no
// commit of another process is between writing a file and its record.
func (s *Store) removeOrphans(ctx context.Context) error {
	statuses, err := s.content.ListStatuses(ctx)
	if err != nil {
		return fmt.Errorf("list ingests: %w", err)
	}
	keep := map[digest.Digest]bool{}
	for _, st := range statuses {
		keep[st.Expected] = true
	}
	var orphans []digest.Digest
	err = s.backend.Walk(ctx, func(info content.Info) error {
		if keep[info.Digest] {
			return nil
		}
		if _, err := s.content.Info(ctx, info.Digest); errdefs.IsNotFound(err) {
			orphans = append(orphans, info.Digest)
		} else if err != nil {
			return err
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil // nothing was ever written
	}
	if err != nil {
		return fmt.Errorf("find orphaned blobs: %w", err)
	}
	for _, d := range orphans {
		if err := s.backend.Delete(ctx, d); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("remove orphaned blob %s: %w", d, err)
		}
	}
	return nil
}
