package testutil

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/metadata"
	"github.com/containerd/containerd/v2/plugins/content/local"
	bolt "go.etcd.io/bbolt"
)

// ContentStores returns containerd's local content store in a test
// directory and containerd's metadata store over it (its bolt database in
// the same directory, closed when the test ends): the two stores lade
// writes blobs into.
func ContentStores(t testing.TB) (backend, meta content.Store) {
	t.Helper()
	dir := t.TempDir()
	backend, err := local.NewStore(filepath.Join(dir, "content"))
	if err != nil {
		t.Fatalf("local content store: %v", err)
	}
	db, err := bolt.Open(filepath.Join(dir, "meta.db"), 0o600, nil)
	if err != nil {
		t.Fatalf("metadata database: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	mdb := metadata.NewDB(db, backend, nil)
	if err := mdb.Init(context.Background()); err != nil {
		t.Fatalf("metadata database: %v", err)
	}
	return backend, mdb.ContentStore()
}
