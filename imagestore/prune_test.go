package imagestore

import (
	"context"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/leases"
	"github.com/lade-build/lade/blobs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestPruneKeepsReferencedContent(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	img, err := writeImage(ctx, s.Content(), "kept")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetImage(ctx, "kept", img.Manifest); err != nil {
		t.Fatal(err)
	}
	junk, err := putBlob(ctx, s.Content(), "application/octet-stream", []byte("unreferenced"), nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.Prune(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Blobs != 1 || st.Bytes != junk.Size {
		t.Fatalf("Prune stats %+v, want 1 blob of %d bytes", st, junk.Size)
	}
	mustExist(t, s, true, img.Manifest, img.Config, img.Layer)
	mustExist(t, s, false, junk)
	// Without the image everything goes.
	if err := s.DeleteImage(ctx, "kept"); err != nil {
		t.Fatal(err)
	}
	if st, err = s.Prune(ctx); err != nil || st.Blobs != 3 {
		t.Fatalf("Prune after DeleteImage: %+v, %v; want 3 blobs", st, err)
	}
	mustExist(t, s, false, img.Manifest, img.Config, img.Layer)
}

func TestPruneHonoursLeases(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	lctx, release, err := s.WithLease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	leased, err := putBlob(lctx, s.Content(), "application/octet-stream", []byte("leased"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := s.Prune(ctx); err != nil || st.Blobs != 0 {
		t.Fatalf("Prune with the lease held: %+v, %v", st, err)
	}
	mustExist(t, s, true, leased)
	if err := release(context.WithoutCancel(ctx)); err != nil {
		t.Fatal(err)
	}
	if st, err := s.Prune(ctx); err != nil || st.Blobs != 1 {
		t.Fatalf("Prune after release: %+v, %v", st, err)
	}
	mustExist(t, s, false, leased)
}

func TestPruneDeletesExpiredLeases(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := ns(context.Background())
	l, err := s.leases.Create(ctx, leases.WithRandomID(), leases.WithLabel(labelGCExpire,
		time.Now().Add(-time.Minute).Format(time.RFC3339)))
	if err != nil {
		t.Fatal(err)
	}
	expired, err := putBlob(leases.WithLease(ctx, l.ID), s.Content(), "text/plain", []byte("expired"), nil)
	if err != nil {
		t.Fatal(err)
	}
	live, release, err := s.WithLease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer release(ctx)
	st, err := s.Prune(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Leases != 1 || st.Blobs != 1 {
		t.Fatalf("Prune stats %+v, want 1 lease and 1 blob", st)
	}
	mustExist(t, s, false, expired)
	ls, err := s.leases.List(ctx)
	if err != nil || len(ls) != 1 || ls[0].ID != mustLeaseID(t, live) {
		t.Fatalf("leases after Prune = %+v, %v", ls, err)
	}
}

func mustLeaseID(t *testing.T, ctx context.Context) string {
	t.Helper()
	id, ok := leases.FromContext(ctx)
	if !ok {
		t.Fatal("context carries no lease")
	}
	return id
}

// TestBlobCacheSurvivesPrune checks that containerd's GC leaves our bucket
// alone and that Prune drops exactly the entries whose blob it removed.
func TestBlobCacheSurvivesPrune(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	img, err := writeImage(ctx, s.Content(), "cached")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetImage(ctx, "cached", img.Manifest); err != nil {
		t.Fatal(err)
	}
	junk, err := putBlob(ctx, s.Content(), ocispec.MediaTypeImageLayerGzip, []byte("junk layer"), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := s.BlobCache()
	kept, dropped := blobs.Key{RefID: "kept"}, blobs.Key{RefID: "dropped"}
	if err := c.Put(ctx, kept, cachePair(img.Layer)); err != nil {
		t.Fatal(err)
	}
	if err := c.Put(ctx, dropped, cachePair(junk)); err != nil {
		t.Fatal(err)
	}
	st, err := s.Prune(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.CacheEntries != 1 || cacheEntries(t, s) != 1 {
		t.Fatalf("Prune stats %+v, %d entries left; want 1 dropped, 1 left", st, cacheEntries(t, s))
	}
	if _, ok, err := c.Get(ctx, kept); !ok || err != nil {
		t.Fatalf("kept entry: ok=%v err=%v", ok, err)
	}
}

// TestPruneRemovesOrphanFiles covers a blob record deleted by another
// process: containerd's GC in this process would not sweep the file.
func TestPruneRemovesOrphanFiles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	s2, err := Open(ctx, s.Root())
	if err != nil {
		t.Fatal(err)
	}
	orphan, err := putBlob(ctx, s2.Content(), "text/plain", []byte("orphan"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Content().Delete(ctx, orphan.Digest); err != nil {
		t.Fatal(err)
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := s.Prune(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Blobs != 1 || st.Bytes != orphan.Size {
		t.Fatalf("Prune stats %+v, want the orphan removed", st)
	}
	mustExist(t, s, false, orphan)
}
