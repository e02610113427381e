package imagestore

import (
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// BenchmarkTxDB compares a transaction through txDB (open, lock, close
// around it) with one on a database kept open, for the cost quoted in
// txdb.go.
func BenchmarkTxDB(b *testing.B) {
	put := func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists([]byte("b"))
		if err != nil {
			return err
		}
		return bk.Put([]byte("k"), []byte("v"))
	}
	get := func(tx *bolt.Tx) error {
		if bk := tx.Bucket([]byte("b")); bk != nil {
			_ = bk.Get([]byte("k"))
		}
		return nil
	}
	b.Run("reopen/view", func(b *testing.B) {
		t := reopened(b)
		for b.Loop() {
			if err := t.View(get); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("held/view", func(b *testing.B) {
		db := held(b)
		for b.Loop() {
			if err := db.View(get); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reopen/update", func(b *testing.B) {
		t := reopened(b)
		for b.Loop() {
			if err := t.Update(put); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("held/update", func(b *testing.B) {
		db := held(b)
		for b.Loop() {
			if err := db.Update(put); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func reopened(b *testing.B) *txDB {
	dir := b.TempDir()
	t := newTxDB(filepath.Join(dir, "metadata.db"), filepath.Join(dir, "metadata.lock"))
	b.Cleanup(func() { _ = t.Close() })
	return t
}

func held(b *testing.B) *bolt.DB {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "metadata.db"), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	return db
}
