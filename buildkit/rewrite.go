package buildkit

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/pkg/labels"
	"github.com/lade-build/lade/blobs"
	"github.com/lade-build/lade/cache"
	"github.com/lade-build/lade/exporter"
	bkcache "github.com/moby/buildkit/cache"
	cacheconfig "github.com/moby/buildkit/cache/config"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/solver"
	"github.com/moby/buildkit/util/contentutil"
	bkprogress "github.com/moby/buildkit/util/progress"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// TimestampRewriter makes the new layers of exports with
// rewrite-timestamp=true in one pass: each layer is diffed from its
// snapshot (mounted read-only with its parent) by lade's tar writer, which
// clamps file times to the epoch as it writes, and the tar is hashed and
// compressed on its way into the worker's content store. BuildKit's blob
// pipeline and its post-pass converter are not used for those layers.
//
// One TimestampRewriter is shared by all exports of a worker: concurrent
// exports compute a layer once, and its blob cache, keyed by (layer,
// compression, level, epoch), lets later exports reuse blobs made for the
// same epoch without reading the layer again.
type TimestampRewriter struct {
	computer *blobs.Computer
	cache    *epochCache
	refs     bkcache.Accessor
}

// NewTimestampRewriter returns a rewriter writing into store. Blob cache
// hits are added to the export's lease through lm. refs resolves the
// parent snapshot of a layer that is not the layer below it in the chain
// (after a merge, or for a diff); nil makes such layers an error.
func NewTimestampRewriter(store blobs.Store, lm leases.Manager, refs bkcache.Accessor) *TimestampRewriter {
	return &TimestampRewriter{computer: blobs.NewComputer(store), cache: &epochCache{leases: lm}, refs: refs}
}

// rewriting reports whether the export clamps the new layers' file times
// of platform pp: rewrite-timestamp and an epoch for pp (BuildKit leaves a
// platform without one as it is).
func (i *instance) rewriting(pp *platformPlan) bool {
	return i.s.out.Options.RewriteTimestamp && pp.epoch != nil
}

// epochChain is one platform's chain during an epoch export.
type epochChain struct {
	pp   *platformPlan
	refs bkcache.RefList
	// base are the blobs of the leading layers equal to the base image's,
	// kept as they are; provider reads them (fetching lazy ones).
	base     []ocispecs.Descriptor
	provider *epochProvider
}

// epochJob is one new layer at one epoch, shared by the chains that
// contain it with that epoch.
type epochJob struct {
	chain *epochChain
	index int
	pair  blobs.DiffPair
}

// exportEpochLayers is exportLayers for rewrite-timestamp=true: the base
// image's layers keep their blobs (BuildKit's, compressed as asked), every
// other layer is computed by the TimestampRewriter with its file times
// clamped to its platform's epoch. A layer that cannot be computed fails
// the export. pps are the platforms that have an epoch.
func (i *instance) exportEpochLayers(ctx context.Context, p *plan, pps []*platformPlan, sid string) error {
	done := oneOff(ctx, fmt.Sprintf("exporting layers (lade, file times clamped to source-date-epoch %s in the diff)", epochsOf(pps)))
	sg := session.NewGroup(sid)
	chains := make([]*epochChain, len(pps))
	defer func() {
		for _, c := range chains {
			if c != nil {
				_ = c.refs.Release(context.WithoutCancel(ctx))
			}
		}
	}()
	eg, ectx := errgroup.WithContext(ctx)
	for n, pp := range pps {
		eg.Go(func() error {
			c, err := i.readChain(ectx, pp, sg)
			chains[n] = c
			return err
		})
	}
	if err := eg.Wait(); err != nil {
		return done(err)
	}
	jobs, err := i.computeEpochLayers(ctx, chains, sg)
	if err != nil {
		return done(err)
	}
	p.epochLayers = map[digest.Digest]bool{}
	for _, c := range chains {
		descs := append([]ocispecs.Descriptor(nil), c.base...)
		for n := len(c.base); n < len(c.refs); n++ {
			pair := jobs[jobKey(c, n)].pair
			descs = append(descs, rewrittenDesc(pair.Blob, *c.pp.epoch))
			p.epochLayers[pair.Blob.Digest] = true
		}
		c.pp.remote = &solver.Remote{Descriptors: descs, Provider: c.provider}
		if c.pp.ref != nil {
			c.pp.metas = layerMetas(c.pp.ref, len(descs))
		}
	}
	return done(nil)
}

// annotationRewritten marks a layer whose file times were clamped to the
// epoch, with the epoch; BuildKit writes it into the manifest.
const annotationRewritten = "buildkit/rewritten-timestamp"

// rewrittenDesc is d annotated as rewritten to epoch, as BuildKit's.
func rewrittenDesc(d ocispecs.Descriptor, epoch time.Time) ocispecs.Descriptor {
	a := make(map[string]string, len(d.Annotations)+1)
	for k, v := range d.Annotations {
		a[k] = v
	}
	a[annotationRewritten] = strconv.FormatInt(epoch.Unix(), 10)
	d.Annotations = a
	return d
}

// Purge empties the rewriter's blob cache and lets its blobs go, as
// pruning all of BuildKit's cache lets everything go.
func (rw *TimestampRewriter) Purge(ctx context.Context) error {
	return rw.cache.purge(ctx)
}

// readChain reads a platform's layer chain and the blobs of its leading
// base-image layers (BuildKit's rule: layers equal to the base config's
// diffIDs, up to the first that differs, are not rewritten).
func (i *instance) readChain(ctx context.Context, pp *platformPlan, sg session.Group) (*epochChain, error) {
	c := &epochChain{pp: pp, provider: newEpochProvider(i.e.opt.ContentStore)}
	if pp.ref == nil {
		return c, nil
	}
	c.refs = pp.ref.LayerChain()
	for n, r := range c.refs {
		if n >= len(pp.baseDiffIDs) || pp.baseDiffIDs[n] == "" || digest.Digest(r.GetString(mdDiffID)) != pp.baseDiffIDs[n] {
			break
		}
		remotes, err := r.GetRemotes(ctx, true, i.s.refCfg, false, sg)
		if err != nil {
			return c, fmt.Errorf("base layer %d: %w", n+1, err)
		}
		rm := remotes[0]
		d := rm.Descriptors[len(rm.Descriptors)-1]
		c.base = append(c.base, d)
		c.provider.add(d.Digest, rm.Provider)
	}
	return c, nil
}

// epochsOf lists the distinct epochs of pps, for progress.
func epochsOf(pps []*platformPlan) string {
	var out []string
	seen := map[int64]bool{}
	for _, pp := range pps {
		if u := pp.epoch.Unix(); !seen[u] {
			seen[u] = true
			out = append(out, strconv.FormatInt(u, 10))
		}
	}
	return strings.Join(out, ", ")
}

// jobKey names layer n of chain c at its platform's epoch.
func jobKey(c *epochChain, n int) string {
	return c.refs[n].ID() + "@" + strconv.FormatInt(c.pp.epoch.UnixNano(), 10)
}

// computeEpochLayers computes every new layer of the chains once per
// epoch, under the worker's concurrency bound, and returns them by
// jobKey.
func (i *instance) computeEpochLayers(ctx context.Context, chains []*epochChain, sg session.Group) (map[string]*epochJob, error) {
	jobs := map[string]*epochJob{}
	var order []*epochJob
	for _, c := range chains {
		for n := len(c.base); n < len(c.refs); n++ {
			if _, ok := jobs[jobKey(c, n)]; !ok {
				j := &epochJob{chain: c, index: n}
				jobs[jobKey(c, n)] = j
				order = append(order, j)
			}
		}
	}
	limit := i.s.out.Options.Concurrency
	if limit <= 0 {
		limit = runtime.GOMAXPROCS(0)
	}
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(limit)
	for _, j := range order {
		eg.Go(func() error {
			pair, err := i.epochLayer(ectx, j, j.chain.pp.epoch, sg)
			if err != nil {
				return fmt.Errorf("rewrite-timestamp: layer %d of %d (%s) of %s: %w", j.index+1, len(j.chain.refs),
					describeRef(j.chain.refs[j.index]), j.chain.pp.id, err)
			}
			j.pair = pair
			return nil
		})
	}
	return jobs, eg.Wait()
}

// epochLayer computes one new layer: from its snapshots, or from its blob
// when the ref is lazy (no snapshot to mount). When the overlay upperdir
// walk fails, the layer is diffed again by walking both trees.
func (i *instance) epochLayer(ctx context.Context, j *epochJob, epoch *time.Time, sg session.Group) (blobs.DiffPair, error) {
	pair, err := i.epochLayerOnce(ctx, j, epoch, sg, false)
	if errors.Is(err, errOverlayDiff) && ctx.Err() == nil {
		pair, err = i.epochLayerOnce(ctx, j, epoch, sg, true)
	}
	return pair, err
}

func (i *instance) epochLayerOnce(ctx context.Context, j *epochJob, epoch *time.Time, sg session.Group, walkOnly bool) (blobs.DiffPair, error) {
	rw := i.e.opt.Rewriter
	r := j.chain.refs[j.index]
	comp := i.s.out.Options.Compression
	if comp.Type == "" {
		comp.Type = blobs.DefaultCompression.Type
	}
	var inner cache.Ref
	kind := "diff"
	if isLazy(r) {
		sr, err := i.lazyLayer(ctx, r, sg)
		if err != nil {
			return blobs.DiffPair{}, err
		}
		inner, kind = sr, "blob"
	} else {
		l, release, err := rw.layerOf(ctx, j.chain.refs, j.index, sg)
		if err != nil {
			return blobs.DiffPair{}, err
		}
		defer release()
		l.walkOnly = walkOnly
		if inner, err = cache.NewChangesRef("buildkit:"+r.ID(), l.changes, cache.ChangesOptions{Description: r.GetDescription(), OnlyCapabilityXattr: true}); err != nil {
			return blobs.DiffPair{}, err
		}
	}
	tr := trackerFrom(ctx)
	name := fmt.Sprintf("compressing layer %d (lade %s, %s, file times clamped to %d)", nextLayer(tr), comp, kind, epoch.Unix())
	er := &epochRef{inner: inner, name: name, tr: tr, pw: func() bkprogress.Writer {
		pw, _, _ := bkprogress.NewFromContext(ctx)
		return pw
	}}
	pairs, err := rw.computer.Compute(ctx, []cache.Ref{er}, blobs.Options{
		Compression: comp, Epoch: epoch, Concurrency: 1, Cache: rw.cache,
	})
	var pair blobs.DiffPair
	if err == nil {
		pair = pairs[0][0]
	}
	er.finish(pair, err)
	return pair, err
}

// layerOf returns the snapshots BuildKit diffs layer n of chain between,
// and a function releasing the refs it had to get: a diff ref's lower and
// upper, else the ref and its parent (the layer below in the chain, or a
// ref of the cache manager after a merge), or no parent at the bottom.
func (rw *TimestampRewriter) layerOf(ctx context.Context, chain bkcache.RefList, n int, sg session.Group) (bkLayer, func(), error) {
	r := chain[n]
	var got bkcache.RefList
	release := func() { _ = got.Release(context.WithoutCancel(ctx)) }
	get := func(id string) (bkcache.ImmutableRef, error) {
		if rw.refs == nil {
			return nil, fmt.Errorf("parent snapshot %s is not in the chain and no cache manager resolves it", id)
		}
		ref, err := rw.refs.Get(ctx, id, nil, bkcache.NoUpdateLastUsed)
		if err != nil {
			return nil, fmt.Errorf("get parent snapshot %s: %w", id, err)
		}
		got = append(got, ref)
		return ref, nil
	}
	l := bkLayer{upper: r, sg: sg}
	var err error
	if up := r.GetString(mdUpperDiffParent); up != "" {
		if l.upper, err = get(up); err == nil && r.GetString(mdLowerDiffParent) != "" {
			l.lower, err = get(r.GetString(mdLowerDiffParent))
		}
	} else if parent := r.GetString(mdParent); parent != "" {
		if n > 0 && chain[n-1].ID() == parent {
			l.lower = chain[n-1]
		} else {
			l.lower, err = get(parent)
		}
	}
	if err != nil {
		release()
		return bkLayer{}, nil, err
	}
	return l, release, nil
}

// lazyLayer returns the blob of a lazy ref as a stored layer: with the
// epoch, lade rewrites its tar headers while it decompresses it, in the
// same pass that hashes and compresses the result.
func (i *instance) lazyLayer(ctx context.Context, r bkcache.ImmutableRef, sg session.Group) (cache.Ref, error) {
	cfg := cacheconfig.RefConfig{Compression: i.s.refCfg.Compression}
	cfg.Compression.Force = false
	remotes, err := r.GetRemotes(ctx, false, cfg, false, sg)
	if err != nil {
		return nil, fmt.Errorf("blob of lazy layer: %w", err)
	}
	rm := remotes[0]
	d := rm.Descriptors[len(rm.Descriptors)-1]
	return cache.NewStoredRef(rm.Provider, cache.Blob{Descriptor: d, DiffID: digest.Digest(d.Annotations[labels.LabelUncompressed])},
		nil, cache.StoredOptions{Description: r.GetDescription()})
}

// describeRef names a ref in errors.
func describeRef(r bkcache.ImmutableRef) string {
	if d := r.GetDescription(); d != "" {
		return fmt.Sprintf("%q", d)
	}
	return r.ID()
}

// markEpochLayers sets epochApplied on the layers of the result whose
// blobs the TimestampRewriter made (new, or reused from its cache).
func markEpochLayers(p *plan, res exporter.Result) {
	for n := range res.Platforms {
		for j, l := range res.Platforms[n].Layers {
			if p.epochLayers[l.Digest] {
				res.Platforms[n].Layers[j].EpochApplied = true
			}
		}
	}
}

// nextLayer numbers a layer status of the export.
func nextLayer(tr *tracker) int64 {
	if tr == nil {
		return globalLayers.Add(1)
	}
	return tr.n.Add(1)
}

// epochProvider reads the blobs of an epoch export: the content store for
// the new ones, the base layers' remotes (which fetch lazy blobs) for the
// others. Unlazy fetches the lazy base layers.
type epochProvider struct {
	*contentutil.MultiProvider
	unlaziers []bkcache.Unlazier
}

func newEpochProvider(cs content.InfoReaderProvider) *epochProvider {
	return &epochProvider{MultiProvider: contentutil.NewMultiProvider(cs)}
}

// add reads dgst from p.
func (e *epochProvider) add(dgst digest.Digest, p content.InfoReaderProvider) {
	e.Add(dgst, p)
	if u, ok := p.(bkcache.Unlazier); ok {
		e.unlaziers = append(e.unlaziers, u)
	}
}

// Unlazy implements bkcache.Unlazier.
func (e *epochProvider) Unlazy(ctx context.Context) error {
	for _, u := range e.unlaziers {
		if err := u.Unlazy(ctx); err != nil {
			return err
		}
	}
	return nil
}
