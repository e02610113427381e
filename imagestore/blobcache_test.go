package imagestore

import (
	"context"
	"reflect"
	"testing"

	"github.com/lade-build/lade/blobs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

func cachePair(desc ocispec.Descriptor) blobs.DiffPair {
	return blobs.DiffPair{
		DiffID:      digest.FromString("diff"),
		Blob:        desc,
		Compression: blobs.Gzip,
		Status:      blobs.StatusNew,
		RefID:       "ref1",
	}
}

func TestBlobCache(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	c := s.BlobCache()
	k := blobs.Key{RefID: "ref1", Compression: blobs.Gzip, Level: 6, Epoch: 42}
	if _, ok, err := c.Get(ctx, k); ok || err != nil {
		t.Fatalf("Get on empty cache: ok=%v err=%v", ok, err)
	}
	desc, err := putBlob(ctx, s.Content(), ocispec.MediaTypeImageLayerGzip, []byte("blob"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := cachePair(desc)
	if err := c.Put(ctx, k, want); err != nil {
		t.Fatal(err)
	}
	got, ok, err := c.Get(ctx, k)
	if err != nil || !ok || !reflect.DeepEqual(got, want) {
		t.Fatalf("Get = %+v, %v, %v; want %+v", got, ok, err, want)
	}
	other := k
	other.Epoch = 0
	if _, ok, _ := c.Get(ctx, other); ok {
		t.Fatal("hit for a key with another epoch")
	}
	// The blob goes: the entry is a miss and is dropped.
	if err := s.Content().Delete(ctx, desc.Digest); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := c.Get(ctx, k); ok || err != nil {
		t.Fatalf("Get after blob deletion: ok=%v err=%v", ok, err)
	}
	if n := cacheEntries(t, s); n != 0 {
		t.Fatalf("%d entries left after a stale hit", n)
	}
}

func TestBlobCachePersists(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := t.TempDir()
	s, err := Open(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := putBlob(ctx, s.Content(), ocispec.MediaTypeImageLayerGzip, []byte("blob"), nil)
	if err != nil {
		t.Fatal(err)
	}
	k := blobs.Key{RefID: "r", Compression: blobs.Gzip}
	if err := s.BlobCache().Put(ctx, k, cachePair(desc)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, ok, err := s.BlobCache().Get(ctx, k); !ok || err != nil {
		t.Fatalf("Get after reopen: ok=%v err=%v", ok, err)
	}
}

// cacheEntries counts the entries of the blob-cache bucket.
func cacheEntries(t *testing.T, s *Store) int {
	t.Helper()
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(blobCacheBucket); b != nil {
			n = b.Stats().KeyN
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
