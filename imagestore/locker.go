package imagestore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/gofrs/flock"
	"github.com/lade-build/lade/blobs"
)

// Locker returns a blobs.Locker over files in the store's root, so that
// processes exporting into one store compute each shared layer once.
func (s *Store) Locker() blobs.Locker { return fileLocker{dir: filepath.Join(s.root, "locks")} }

// fileLocker takes one flock per key under dir.
type fileLocker struct{ dir string }

// Lock implements blobs.Locker. Lock files stay: removing one while another
// process waits on it would let two processes hold "the same" lock.
func (l fileLocker) Lock(ctx context.Context, key string) (func(), error) {
	if err := os.MkdirAll(l.dir, 0o700); err != nil {
		return nil, fmt.Errorf("lock %s: %w", key, err)
	}
	sum := sha256.Sum256([]byte(key))
	fl := flock.New(filepath.Join(l.dir, hex.EncodeToString(sum[:12])+".lock"))
	ok, err := fl.TryLockContext(ctx, 20*time.Millisecond)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", key, err)
	}
	if !ok {
		return nil, fmt.Errorf("lock %s: %w", key, ctx.Err())
	}
	return func() { _ = fl.Unlock() }, nil
}
