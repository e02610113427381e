package buildkit

import (
	"context"
	"fmt"
	"testing"

	"github.com/containerd/containerd/v2/core/leases"
	"github.com/lade-build/lade/blobs"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// fakeLeases records AddResource calls.
type fakeLeases struct {
	leases.Manager
	added   []string
	deleted []string
	created []leases.Lease
}

func (f *fakeLeases) AddResource(_ context.Context, l leases.Lease, r leases.Resource) error {
	f.added = append(f.added, l.ID+" "+r.Type+" "+r.ID)
	return nil
}

func (f *fakeLeases) DeleteResource(_ context.Context, l leases.Lease, r leases.Resource) error {
	f.deleted = append(f.deleted, l.ID+" "+r.Type+" "+r.ID)
	return nil
}

func (f *fakeLeases) Delete(_ context.Context, l leases.Lease, _ ...leases.DeleteOpt) error {
	f.deleted = append(f.deleted, l.ID)
	return nil
}

func (f *fakeLeases) Create(_ context.Context, opts ...leases.Opt) (leases.Lease, error) {
	var l leases.Lease
	for _, o := range opts {
		if err := o(&l); err != nil {
			return l, err
		}
	}
	f.created = append(f.created, l)
	return l, nil
}

// TestEpochCache: a blob is found only for its own epoch (and compression
// and level), a hit is added to the asking export's lease, and the cache
// is bounded.
func TestEpochCache(t *testing.T) {
	fl := &fakeLeases{}
	c := &epochCache{leases: fl}
	k := blobs.Key{RefID: "rewrite:buildkit:abc", Compression: blobs.Gzip, Level: 6, Epoch: 1700000000}
	p := blobs.DiffPair{Blob: ocispecs.Descriptor{Digest: digest.FromString("blob")}}
	ctx := leases.WithLease(context.Background(), "export-1")
	if err := c.Put(ctx, k, p); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := c.Get(ctx, k); err != nil || !ok || got.Blob.Digest != p.Blob.Digest {
		t.Fatalf("same key: %v %v %v", got, ok, err)
	}
	if len(fl.created) != 1 || fl.created[0].Labels["containerd.io/gc.expire"] == "" {
		t.Fatalf("the cache's own lease: %+v, want one with an expiry", fl.created)
	}
	hold := fl.created[0].ID + " content " + p.Blob.Digest.String()
	if want := "export-1 content " + p.Blob.Digest.String(); len(fl.added) != 2 || fl.added[0] != hold || fl.added[1] != want {
		t.Fatalf("lease resources %v, want [%s %s]", fl.added, hold, want)
	}
	for _, other := range []blobs.Key{
		{RefID: k.RefID, Compression: k.Compression, Level: k.Level, Epoch: 1600000000},
		{RefID: k.RefID, Compression: k.Compression, Level: 9, Epoch: k.Epoch},
		{RefID: k.RefID, Compression: blobs.Zstd, Level: k.Level, Epoch: k.Epoch},
	} {
		if _, ok, _ := c.Get(ctx, other); ok {
			t.Fatalf("%s found the blob of %s", other, k)
		}
	}
	if _, ok, _ := c.Get(context.Background(), k); !ok || len(fl.added) != 2 {
		t.Fatalf("hit without a lease: ok=%v, lease resources %v", ok, fl.added)
	}
	// The same blob under other keys stays held until its last entry goes.
	for n := range epochCacheSize {
		_ = c.Put(ctx, blobs.Key{RefID: fmt.Sprint(n)}, p)
	}
	if _, ok, _ := c.Get(context.Background(), k); ok || len(c.m) != epochCacheSize {
		t.Fatalf("bound: oldest kept=%v, %d entries", ok, len(c.m))
	}
	if len(fl.deleted) != 0 {
		t.Fatalf("blob released while entries still name it: %v", fl.deleted)
	}
	for n := range epochCacheSize {
		q := blobs.DiffPair{Blob: ocispecs.Descriptor{Digest: digest.FromString(fmt.Sprint("other", n))}}
		_ = c.Put(ctx, blobs.Key{RefID: fmt.Sprint("other", n)}, q)
	}
	if len(fl.deleted) != 1 || fl.deleted[0] != hold {
		t.Fatalf("after every entry of the blob was evicted, released %v, want [%s]", fl.deleted, hold)
	}
}

// TestEpochCachePurge: purging (BuildKit's prune --all) forgets every entry
// and deletes the cache's own lease, so its blobs can be collected.
func TestEpochCachePurge(t *testing.T) {
	fl := &fakeLeases{}
	c := &epochCache{leases: fl}
	k := blobs.Key{RefID: "rewrite:buildkit:abc", Compression: blobs.Gzip, Epoch: 1700000000}
	p := blobs.DiffPair{Blob: ocispecs.Descriptor{Digest: digest.FromString("blob")}}
	if err := c.Put(context.Background(), k, p); err != nil {
		t.Fatal(err)
	}
	if err := c.purge(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := c.Get(context.Background(), k); ok {
		t.Error("entry found after purge")
	}
	if len(fl.deleted) != 1 || fl.deleted[0] != fl.created[0].ID {
		t.Errorf("deleted %v, want the cache's lease %s", fl.deleted, fl.created[0].ID)
	}
	if err := c.Put(context.Background(), k, p); err != nil || len(fl.created) != 2 {
		t.Errorf("put after purge: %v, leases made %d, want a new one", err, len(fl.created))
	}
}
