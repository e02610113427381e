package imagestore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/containerd/errdefs"
	"github.com/lade-build/lade/blobs"
	bolt "go.etcd.io/bbolt"
)

// blobCacheBucket is the top-level bolt bucket of the blob cache. containerd
// only reads and writes its own schema bucket ("v1"): its GC scans and sweeps
// inside v1 only, and Init's migrations look up buckets by schema name, so
// this bucket is ours alone (TestBlobCacheSurvivesPrune checks it).
var blobCacheBucket = []byte("lade.blobcache.v1")

// blobCache is a blobs.Cache persisted in the Store's metadata database.
type blobCache struct{ s *Store }

// BlobCache returns a blobs.Cache persisted in the Store's database: values
// are JSON-encoded blobs.DiffPair keyed by blobs.Key.String(). A hit whose
// blob is no longer in the content store is dropped and reported as a miss.
// Entries do not keep blobs alive; Prune drops entries whose blob it removed.
func (s *Store) BlobCache() blobs.Cache { return blobCache{s} }

// Get implements blobs.Cache.
func (c blobCache) Get(ctx context.Context, k blobs.Key) (blobs.DiffPair, bool, error) {
	key := []byte(k.String())
	var raw []byte
	err := c.s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(blobCacheBucket); b != nil {
			raw = bytes.Clone(b.Get(key))
		}
		return nil
	})
	if err != nil {
		return blobs.DiffPair{}, false, fmt.Errorf("read blob cache: %w", err)
	}
	if raw == nil {
		return blobs.DiffPair{}, false, nil
	}
	var p blobs.DiffPair
	if err := json.Unmarshal(raw, &p); err != nil || p.Blob.Digest.Validate() != nil {
		// A value we cannot use is as good as absent; Put overwrites it.
		return blobs.DiffPair{}, false, nil
	}
	if _, err := c.s.content.Info(ctx, p.Blob.Digest); errdefs.IsNotFound(err) {
		if err := c.s.deleteCacheEntries(map[string][]byte{string(key): raw}); err != nil {
			return blobs.DiffPair{}, false, err
		}
		return blobs.DiffPair{}, false, nil
	} else if err != nil {
		return blobs.DiffPair{}, false, fmt.Errorf("check cached blob %s: %w", p.Blob.Digest, err)
	}
	return p, true, nil
}

// Put implements blobs.Cache.
func (c blobCache) Put(_ context.Context, k blobs.Key, p blobs.DiffPair) error {
	raw, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encode blob cache entry: %w", err)
	}
	err = c.s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(blobCacheBucket)
		if err != nil {
			return err
		}
		return b.Put([]byte(k.String()), raw)
	})
	if err != nil {
		return fmt.Errorf("write blob cache: %w", err)
	}
	return nil
}

// deleteCacheEntries deletes the entries of stale whose value is unchanged
// (a concurrent Put of a fresh pair wins).
func (s *Store) deleteCacheEntries(stale map[string][]byte) error {
	if len(stale) == 0 {
		return nil
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(blobCacheBucket)
		if b == nil {
			return nil
		}
		for k, v := range stale {
			if bytes.Equal(b.Get([]byte(k)), v) {
				if err := b.Delete([]byte(k)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete blob cache entries: %w", err)
	}
	return nil
}

// pruneBlobCache drops entries whose blob is gone (or whose value cannot be
// read) and returns how many it dropped.
func (s *Store) pruneBlobCache(ctx context.Context) (int, error) {
	all := map[string][]byte{}
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(blobCacheBucket)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			all[string(k)] = bytes.Clone(v)
			return nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("read blob cache: %w", err)
	}
	stale := map[string][]byte{}
	for k, v := range all {
		var p blobs.DiffPair
		if err := json.Unmarshal(v, &p); err != nil || p.Blob.Digest.Validate() != nil {
			stale[k] = v
			continue
		}
		if _, err := s.content.Info(ctx, p.Blob.Digest); errdefs.IsNotFound(err) {
			stale[k] = v
		} else if err != nil {
			return 0, fmt.Errorf("check cached blob %s: %w", p.Blob.Digest, err)
		}
	}
	return len(stale), s.deleteCacheEntries(stale)
}
