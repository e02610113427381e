package buildkit

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/leases"
	"github.com/lade-build/lade/blobs"
	digest "github.com/opencontainers/go-digest"
)

// epochCacheSize bounds the remembered blobs.
const epochCacheSize = 4096

// epochCacheHold is how long the cache's lease keeps its blobs from the
// garbage collector: an export to a tar or a registry leaves them owned
// by nothing else, and a rebuild with the same epoch should still find
// them. Blobs evicted from the cache leave the lease at once, and a lease
// left by a daemon that stopped expires after this.
const epochCacheHold = 24 * time.Hour

// epochCache is the rewriter's blob cache, keyed by (layer, compression,
// level, epoch): a blob made for one epoch is never used for another. Its
// blobs are held by a lease of its own (epochCacheHold). A hit is also
// added to the lease of the export asking for it before the caller checks
// that the blob is still in the store, so GC cannot remove it between the
// check and the image that references it.
type epochCache struct {
	leases leases.Manager
	mu     sync.Mutex
	m      map[string]blobs.DiffPair
	order  []string
	hold   *leases.Lease         // the cache's own lease, made on first Put
	held   map[digest.Digest]int // entries naming each blob in the lease
}

// Get implements blobs.Cache.
func (c *epochCache) Get(ctx context.Context, k blobs.Key) (blobs.DiffPair, bool, error) {
	c.mu.Lock()
	p, ok := c.m[k.String()]
	c.mu.Unlock()
	if !ok {
		return blobs.DiffPair{}, false, nil
	}
	if id, leased := leases.FromContext(ctx); leased && c.leases != nil {
		if err := c.leases.AddResource(ctx, leases.Lease{ID: id}, blobResource(p)); err != nil {
			return blobs.DiffPair{}, false, fmt.Errorf("lease blob %s: %w", p.Blob.Digest, err)
		}
	}
	return p, true, nil
}

// Put implements blobs.Cache: the blob joins the cache's lease, and the
// oldest entries beyond epochCacheSize leave both.
func (c *epochCache) Put(ctx context.Context, k blobs.Key, p blobs.DiffPair) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.holdBlob(ctx, p); err != nil {
		return err
	}
	if c.m == nil {
		c.m, c.held = map[string]blobs.DiffPair{}, map[digest.Digest]int{}
	}
	ks := k.String()
	if old, ok := c.m[ks]; ok {
		c.release(ctx, old)
	} else {
		c.order = append(c.order, ks)
	}
	c.m[ks] = p
	c.held[p.Blob.Digest]++
	for len(c.order) > epochCacheSize {
		c.release(ctx, c.m[c.order[0]])
		delete(c.m, c.order[0])
		c.order = c.order[1:]
	}
	return nil
}

// release drops one entry's claim on its blob; the last one takes the
// blob out of the cache's lease. c.mu is held.
func (c *epochCache) release(ctx context.Context, p blobs.DiffPair) {
	d := p.Blob.Digest
	if c.held[d]--; c.held[d] > 0 {
		return
	}
	delete(c.held, d)
	if c.hold != nil {
		_ = c.leases.DeleteResource(context.WithoutCancel(ctx), *c.hold, blobResource(p))
	}
}

// purge forgets every entry and deletes the cache's lease, so that the
// garbage collector may take blobs nothing else holds.
func (c *epochCache) purge(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m, c.order, c.held = nil, nil, nil
	if c.hold == nil {
		return nil
	}
	err := c.leases.Delete(context.WithoutCancel(ctx), *c.hold)
	c.hold = nil
	if err != nil {
		return fmt.Errorf("delete the rewrite-timestamp blob cache's lease: %w", err)
	}
	return nil
}

// holdBlob adds p's blob to the cache's lease, making the lease first.
func (c *epochCache) holdBlob(ctx context.Context, p blobs.DiffPair) error {
	if c.leases == nil {
		return nil
	}
	ctx = context.WithoutCancel(ctx)
	if c.hold == nil {
		l, err := c.leases.Create(ctx, leases.WithRandomID(), leases.WithExpiration(epochCacheHold),
			leases.WithLabel("lade.build/lease", "rewrite-timestamp blob cache"))
		if err != nil {
			return fmt.Errorf("lease for the rewrite-timestamp blob cache: %w", err)
		}
		c.hold = &l
	}
	if err := c.leases.AddResource(ctx, *c.hold, blobResource(p)); err != nil {
		return fmt.Errorf("hold blob %s in the rewrite-timestamp blob cache: %w", p.Blob.Digest, err)
	}
	return nil
}

// blobResource is p's blob as a lease resource.
func blobResource(p blobs.DiffPair) leases.Resource {
	return leases.Resource{ID: p.Blob.Digest.String(), Type: "content"}
}
