package blobs

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	"github.com/lade-build/lade/cache"
	"github.com/lade-build/lade/progress"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/singleflight"
)

// Store is what the diff-pair computation needs of a content store: write
// blobs, abort a failed ingest, and check that cached or stored blobs are
// there. containerd's content.Store satisfies it.
type Store interface {
	content.Ingester
	content.IngestManager
	content.InfoProvider
}

// Options control a diff-pair computation.
type Options struct {
	// Compression of new blobs; the zero value is DefaultCompression.
	Compression Compression
	// Force recompresses stored blobs whose compression differs.
	Force bool
	// Epoch, when set, clamps file timestamps in new layers to it.
	Epoch *time.Time
	// Concurrency bounds the layers computed at once; 0 means GOMAXPROCS,
	// at least 2.
	Concurrency int
	// Cache, when set, remembers blobs across calls.
	Cache Cache
	// Progress receives a vertex per layer.
	Progress progress.Writer
	// Locker, when set with Cache, makes processes sharing a store compute
	// each layer once: the second waits for the first and reuses its blob.
	Locker Locker
}

// Locker serializes work on one key across processes.
type Locker interface {
	// Lock blocks until key is held or ctx is done. The returned function
	// releases the lock; it must be called exactly once.
	Lock(ctx context.Context, key string) (unlock func(), err error)
}

func (o Options) compression() Compression {
	if o.Compression.Type == "" {
		return Compression{Type: DefaultCompression.Type, Level: o.Compression.Level}
	}
	return o.Compression
}

func (o Options) limit() int {
	if o.Concurrency > 0 {
		return o.Concurrency
	}
	// At least two, so that small layers never wait behind one large one;
	// compression memory is bounded by pargzip's pool, not by this.
	return max(runtime.GOMAXPROCS(0), 2)
}

// Computer computes diff pairs into one store. Identical work asked
// concurrently through one Computer runs once. It is safe for concurrent use.
type Computer struct {
	store  Store
	flight singleflight.Group
}

// NewComputer returns a Computer writing into store.
func NewComputer(store Store) *Computer {
	return &Computer{store: store}
}

// GetDiffPairs returns one DiffPair per layer of ref's chain, parent first.
// It is a convenience for a single chain with a fresh Computer.
func GetDiffPairs(ctx context.Context, store Store, ref cache.Ref, opts Options) ([]DiffPair, error) {
	out, err := NewComputer(store).Compute(ctx, []cache.Ref{ref}, opts)
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// job is one distinct layer to compute.
type job struct {
	ref  cache.Ref
	key  Key
	pair DiffPair
}

// Compute returns the diff pairs of every chain in tops (result i belongs to
// tops[i], parent first). All layers of all chains run concurrently under
// opts.Concurrency, largest first; a layer shared by several chains is
// computed once. A nil top gives an empty chain.
func (c *Computer) Compute(ctx context.Context, tops []cache.Ref, opts Options) ([][]DiffPair, error) {
	comp := opts.compression()
	if err := comp.Validate(); err != nil {
		return nil, err
	}
	codec, err := comp.codec()
	if err != nil {
		return nil, err
	}
	jobs := map[string]*job{}
	var order []*job
	chains := make([][]*job, len(tops))
	for i, top := range tops {
		for _, r := range cache.Chain(top) {
			k := Key{RefID: r.ID(), Compression: comp.Type, Level: comp.EffectiveLevel(), Epoch: epochKey(layerEpoch(r, opts)), Codec: codec}
			j, ok := jobs[k.String()]
			if !ok {
				j = &job{ref: r, key: k}
				jobs[k.String()] = j
				order = append(order, j)
			}
			chains[i] = append(chains[i], j)
		}
	}
	slices.SortStableFunc(order, func(a, b *job) int {
		return int(min(max(b.ref.Layer().Size()-a.ref.Layer().Size(), -1), 1))
	})
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(opts.limit())
	for _, j := range order {
		eg.Go(func() error {
			p, err := c.one(ectx, j, comp, opts)
			if err != nil {
				return err
			}
			j.pair = p
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	out := make([][]DiffPair, len(tops))
	for i, chain := range chains {
		for _, j := range chain {
			out[i] = append(out[i], j.pair)
		}
	}
	return out, nil
}

// one computes a single layer, deduplicated with concurrent identical work.
func (c *Computer) one(ctx context.Context, j *job, comp Compression, opts Options) (DiffPair, error) {
	v, err, _ := c.flight.Do(j.key.String(), func() (any, error) {
		return c.compute(ctx, j, comp, opts)
	})
	if err != nil {
		return DiffPair{}, fmt.Errorf("layer %s: %w", describe(j.ref), err)
	}
	return v.(DiffPair), nil
}

func (c *Computer) compute(ctx context.Context, j *job, comp Compression, opts Options) (DiffPair, error) {
	layer := j.ref.Layer()
	if blob, ok := layer.Stored(); ok {
		if p, ok := c.reuseStored(j.ref, blob, comp, opts); ok {
			report(opts.Progress, j.ref, p)
			return p, nil
		}
	}
	if p, ok, err := c.cached(ctx, j.key, opts.Cache); err != nil || ok {
		if ok {
			report(opts.Progress, j.ref, p)
		}
		return p, err
	}
	if opts.Locker != nil && opts.Cache != nil {
		unlock, err := opts.Locker.Lock(ctx, j.key.String())
		if err != nil {
			return DiffPair{}, fmt.Errorf("wait for another process computing this layer: %w", err)
		}
		defer unlock()
		// Another process may have computed it while we waited.
		if p, ok, err := c.cached(ctx, j.key, opts.Cache); err != nil || ok {
			if ok {
				report(opts.Progress, j.ref, p)
			}
			return p, err
		}
	}
	p, err := c.write(ctx, j.ref, comp, opts)
	if err != nil {
		return DiffPair{}, err
	}
	if _, stored := layer.Stored(); stored {
		p.Status = StatusConverted
	}
	if opts.Cache != nil {
		if err := opts.Cache.Put(ctx, j.key, p); err != nil {
			return DiffPair{}, fmt.Errorf("remember blob: %w", err)
		}
	}
	return p, nil
}

// reuseStored returns the stored blob as the pair unless its compression
// must be converted. The blob keeps its annotations (a zstd:chunked base
// layer its TOC's).
func (c *Computer) reuseStored(ref cache.Ref, blob cache.Blob, comp Compression, opts Options) (DiffPair, bool) {
	t, err := TypeOfDescriptor(blob.Descriptor)
	if err != nil {
		return DiffPair{}, false
	}
	if opts.Force && !sameFamily(t, comp.Type) {
		return DiffPair{}, false
	}
	d := blob.Descriptor
	d.Annotations = withAnnotation(d.Annotations, LabelUncompressed, blob.DiffID.String())
	return DiffPair{
		DiffID: blob.DiffID, Blob: d, Compression: t, Status: StatusReused,
		Empty: blob.DiffID == EmptyTarDiffID, RefID: ref.ID(),
	}, true
}

// cached looks k up in the cache and checks the blob is still in the store.
func (c *Computer) cached(ctx context.Context, k Key, bc Cache) (DiffPair, bool, error) {
	if bc == nil {
		return DiffPair{}, false, nil
	}
	p, ok, err := bc.Get(ctx, k)
	if err != nil || !ok {
		return DiffPair{}, false, err
	}
	info, err := c.store.Info(ctx, p.Blob.Digest)
	if errdefs.IsNotFound(err) || (err == nil && info.Size != p.Blob.Size) {
		return DiffPair{}, false, nil
	}
	if err != nil {
		return DiffPair{}, false, fmt.Errorf("check cached blob %s: %w", p.Blob.Digest, err)
	}
	p.Status = StatusReused
	p.RefID = k.RefID
	return p, true, nil
}

// layerEpoch is the clamp time for r: stored (base-image) layers keep their
// timestamps even when converted, as their diffIDs must not change.
func layerEpoch(r cache.Ref, opts Options) *time.Time {
	if _, stored := r.Layer().Stored(); stored {
		return nil
	}
	return opts.Epoch
}

func describe(r cache.Ref) string {
	if d := r.Description(); d != "" {
		return fmt.Sprintf("%q", d)
	}
	return r.ID()
}

func report(w progress.Writer, r cache.Ref, p DiffPair) {
	t := progress.Start(w, "layer:"+r.ID(), layerName(r), p.Blob.Size)
	t.Add(p.Blob.Size)
	t.Done(string(p.Status), nil)
}

func layerName(r cache.Ref) string {
	if d := r.Description(); d != "" {
		return "layer " + d
	}
	return "layer " + r.ID()
}

func withAnnotation(m map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for kk, vv := range m {
		out[kk] = vv
	}
	out[k] = v
	return out
}
