// Package image is lade's embedded local image store, the "image"
// destination: containerd v2's content store and metadata database (bbolt)
// under one directory, with named images, leases, garbage collection, a
// persistent blob cache and an integrity check. No daemon is involved.
//
// Layout of a root:
//
//	root/lock           flock: shared while a Store is open, exclusive in Prune
//	root/metadata.lock  flock: held while this process has metadata.db open
//	root/metadata.db    bbolt: containerd metadata (bucket "v1") and the blob
//	                    cache (bucket "lade.blobcache.v1")
//	root/content/       containerd's local content store (blobs, ingest)
//
// Every object lives in the containerd namespace "lade". Methods set it
// themselves, so callers pass plain contexts.
//
// Concurrency: any number of processes may open a root at once (they share
// root/lock) and write content and images concurrently; their database
// transactions are serialized, but blob data is written outside them. Prune
// takes root/lock exclusively, so it waits for every other open Store (a
// running export) to close, and new Stores wait for it. See txdb.go for how
// the database is shared between processes.
package imagestore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/core/metadata"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/gofrs/flock"
)

// Namespace is the containerd namespace holding all of a Store's objects.
const Namespace = "lade"

// lockRetry is how often a blocked Open or Prune retries the root lock.
const lockRetry = 20 * time.Millisecond

// Store is an open local image store. It is safe for concurrent use by
// multiple goroutines; several processes may open the same root.
type Store struct {
	root    string
	lock    *flock.Flock
	backend content.Store // containerd's local store, without metadata
	tx      *txDB
	db      *metadata.DB
	content content.Store
	images  images.Store
	leases  leases.Manager

	// lockMu guards lock changes (Prune upgrades, Close releases).
	lockMu sync.Mutex
	closed bool
}

// DefaultRoot returns lade's default store directory: $XDG_DATA_HOME/lade
// when XDG_DATA_HOME is an absolute path, else $HOME/.local/share/lade. With
// no home directory it falls back to a per-user directory in os.TempDir().
func DefaultRoot() string {
	if d := os.Getenv("XDG_DATA_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "lade")
	}
	if h, err := os.UserHomeDir(); err == nil && h != "" {
		return filepath.Join(h, ".local", "share", "lade")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("lade-%d", os.Getuid()))
}

// Open opens the store at root, creating it (mode 0700) if missing. It takes
// a shared lock on root/lock and so waits, bounded by ctx, while a Prune runs.
// The caller must Close the Store.
func Open(ctx context.Context, root string) (*Store, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("create store root: %w", err)
	}
	lk := flock.New(filepath.Join(root, "lock"), flock.SetPermissions(0o600))
	ok, err := lk.TryRLockContext(ctx, lockRetry)
	if err != nil || !ok {
		return nil, fmt.Errorf("lock store %s: %w", root, errors.Join(err, ctx.Err()))
	}
	s, err := open(ctx, root, lk)
	if err != nil {
		_ = lk.Unlock()
		return nil, err
	}
	return s, nil
}

func open(ctx context.Context, root string, lk *flock.Flock) (*Store, error) {
	backend, err := local.NewStore(filepath.Join(root, "content"))
	if err != nil {
		return nil, fmt.Errorf("open content store: %w", err)
	}
	tx := newTxDB(filepath.Join(root, "metadata.db"), filepath.Join(root, "metadata.lock"))
	db := metadata.NewDB(tx, backend, nil)
	if err := db.Init(ctx); err != nil {
		return nil, fmt.Errorf("init metadata database: %w", err)
	}
	return &Store{
		root:    root,
		lock:    lk,
		backend: backend,
		tx:      tx,
		db:      db,
		content: nsContent{db.ContentStore()},
		images:  metadata.NewImageStore(db),
		leases:  metadata.NewLeaseManager(db),
	}, nil
}

// Root returns the directory the Store was opened on.
func (s *Store) Root() string { return s.root }

// Content returns the Store's content store. Labels persist in the metadata
// database, and Prune honours gc.ref.* labels and leases. Contexts passed to
// it need no namespace: the Store's namespace always replaces any.
func (s *Store) Content() content.Store { return s.content }

// Close releases the database and the root lock. Transactions running in
// other goroutines finish first. Close is idempotent.
func (s *Store) Close() error {
	s.lockMu.Lock()
	defer s.lockMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	errDB := s.db.Close()
	if err := s.lock.Unlock(); err != nil {
		return errors.Join(errDB, fmt.Errorf("unlock store: %w", err))
	}
	return errDB
}

// ns returns ctx in the Store's namespace.
func ns(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, Namespace)
}
