package imagestore

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestTxDBYields checks that a busy user of the database (goroutines whose
// transactions always overlap, so its handle never closes on its own) lets
// another user in within a few maxHold periods. Two txDBs on one file behave
// as two processes: the lock file excludes across file descriptors.
func TestTxDBYields(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	busy := newTxDB(filepath.Join(dir, "metadata.db"), filepath.Join(dir, "metadata.lock"))
	other := newTxDB(filepath.Join(dir, "metadata.db"), filepath.Join(dir, "metadata.lock"))
	ctx, stop := context.WithCancel(context.Background())
	// Without yielding the busy user would hold the database until stopped:
	// stop it anyway so the test fails instead of hanging.
	guard := time.AfterFunc(20*maxHold, stop)
	defer guard.Stop()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				_ = busy.View(func(*bolt.Tx) error { time.Sleep(2 * time.Millisecond); return nil })
			}
		})
	}
	time.Sleep(10 * time.Millisecond)
	start := time.Now()
	err := other.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists([]byte("b"))
		return err
	})
	waited := time.Since(start)
	stop()
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if waited > 10*maxHold {
		t.Fatalf("second user waited %v behind a busy one (maxHold %v)", waited, maxHold)
	}
	t.Logf("second user waited %v", waited)
	if err := busy.Close(); err != nil {
		t.Fatal(err)
	}
	if err := busy.View(func(*bolt.Tx) error { return nil }); !errors.Is(err, errClosed) {
		t.Fatalf("View after Close: %v", err)
	}
}
