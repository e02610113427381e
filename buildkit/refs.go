package buildkit

import (
	"context"
	"fmt"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/pkg/labels"
	"github.com/lade-build/lade/blobs"
	"github.com/lade-build/lade/cache"
	bkcache "github.com/moby/buildkit/cache"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/solver"
	bkcompression "github.com/moby/buildkit/util/compression"
	"github.com/moby/buildkit/util/contentutil"
	"github.com/moby/buildkit/util/tracing"
	digest "github.com/opencontainers/go-digest"
	"go.opentelemetry.io/otel/attribute"
	oteltrace "go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"
)

// exportLayers makes sure every layer of every platform's ref has a blob,
// computed by BuildKit's blob pipeline with lade's compressor (or, with
// rewrite-timestamp, by lade's own pipeline: see exportEpochLayers), and records
// each platform's remote (descriptors bottom first, and a provider that
// can fetch lazy base layers).
func (i *instance) exportLayers(ctx context.Context, plan *plan, sid string) (err error) {
	span, ctx := startLayersSpan(ctx, i.s.refCfg.Compression)
	defer func() { tracing.FinishWithError(span, err) }()
	var plain, clamped []*platformPlan
	for _, pp := range plan.platforms {
		if i.rewriting(pp) {
			clamped = append(clamped, pp)
		} else {
			plain = append(plain, pp)
		}
	}
	if len(clamped) > 0 {
		if err := i.exportEpochLayers(ctx, plan, clamped, sid); err != nil || len(plain) == 0 {
			return err
		}
	}
	done := oneOff(ctx, "exporting layers")
	eg, ectx := errgroup.WithContext(ctx)
	for _, pp := range plain {
		if pp.ref == nil {
			pp.remote = &solver.Remote{Provider: i.e.opt.ContentStore}
			continue
		}
		eg.Go(func() error {
			remotes, err := pp.ref.GetRemotes(ectx, true, i.s.refCfg, false, session.NewGroup(sid))
			if err != nil {
				return err
			}
			pp.remote = remotes[0]
			pp.metas = layerMetas(pp.ref, len(pp.remote.Descriptors))
			return restoreZstdChunked(ectx, i.e.opt.ContentStore, pp.remote.Descriptors)
		})
	}
	return done(eg.Wait())
}

// startLayersSpan opens the trace span buildkitd's image writer opens
// around the computation of the layers' blobs, named and attributed as
// there, so that a trace of an export reads the same on either daemon.
func startLayersSpan(ctx context.Context, comp bkcompression.Config) (oteltrace.Span, context.Context) {
	attr := []attribute.KeyValue{
		attribute.String("exportLayers.compressionType", comp.Type.String()),
		attribute.Bool("exportLayers.forceCompression", comp.Force),
	}
	if comp.Level != nil {
		attr = append(attr, attribute.Int("exportLayers.compressionLevel", *comp.Level))
	}
	return tracing.StartSpan(ctx, "export layers", oteltrace.WithAttributes(attr...))
}

// layerMeta is what history synthesis needs of one BuildKit ref.
type layerMeta struct {
	description string
	createdAt   time.Time
}

// layerMetas returns the description and creation time of each layer of
// ref's chain, bottom first; n entries, empty when unknown.
func layerMetas(ref bkcache.ImmutableRef, n int) []layerMeta {
	out := make([]layerMeta, n)
	chain := ref.LayerChain()
	defer chain.Release(context.TODO())
	if len(chain) != n {
		return out
	}
	for i, r := range chain {
		out[i] = layerMeta{description: r.GetDescription(), createdAt: r.GetCreatedAt()}
	}
	return out
}

// ladeChain turns a platform's remote into a lade ref chain whose layers
// are the stored BuildKit blobs: lade reads no layer data, it only
// normalizes history, drops empty layers and writes the image.
// Empty layers of the base image are not reported empty: they are kept.
func ladeChain(pp *platformPlan) (cache.Ref, []bool, error) {
	var top cache.Ref
	base := baseLayers(pp)
	empty := make([]bool, len(pp.remote.Descriptors))
	for n, d := range pp.remote.Descriptors {
		diffID := digest.Digest(d.Annotations[labels.LabelUncompressed])
		if diffID == "" {
			return nil, nil, fmt.Errorf("layer %d (%s) has no diffID: BuildKit's blob carries no %s annotation", n, d.Digest, labels.LabelUncompressed)
		}
		empty[n] = diffID == blobs.EmptyTarDiffID && n >= base
		var meta layerMeta
		if n < len(pp.metas) {
			meta = pp.metas[n]
		}
		r, err := cache.NewStoredRef(providerOf(pp.remote), cache.Blob{Descriptor: d, DiffID: diffID}, top,
			cache.StoredOptions{Description: meta.description, CreatedAt: meta.createdAt})
		if err != nil {
			return nil, nil, err
		}
		top = r
	}
	return top, empty, nil
}

// baseLayers counts the layers at the bottom of the platform's chain that
// are its base image's (the same diffIDs, in order).
func baseLayers(pp *platformPlan) int {
	n := 0
	for n < len(pp.remote.Descriptors) && n < len(pp.baseDiffIDs) &&
		digest.Digest(pp.remote.Descriptors[n].Annotations[labels.LabelUncompressed]) == pp.baseDiffIDs[n] {
		n++
	}
	return n
}

// providerOf returns the remote's provider as a content.Provider.
func providerOf(r *solver.Remote) content.Provider {
	return r.Provider
}

// unlazy fetches lazy base layers of every platform, for outputs that need
// every blob locally (tarballs, the image store).
func unlazy(ctx context.Context, plan *plan) error {
	eg, ectx := errgroup.WithContext(ctx)
	for _, pp := range plan.platforms {
		if u, ok := pp.remote.Provider.(bkcache.Unlazier); ok {
			eg.Go(func() error { return u.Unlazy(ectx) })
		}
	}
	return eg.Wait()
}

// layerProvider returns a provider of every blob of the export: the content
// store for what lade wrote, the remotes' providers for the layers.
func (i *instance) layerProvider(plan *plan) (*contentutil.MultiProvider, map[digest.Digest]map[string]string) {
	mp := contentutil.NewMultiProvider(i.e.opt.ContentStore)
	ann := map[digest.Digest]map[string]string{}
	for _, pp := range plan.platforms {
		for _, d := range pp.remote.Descriptors {
			mp.Add(d.Digest, pp.remote.Provider)
			if len(d.Annotations) == 0 {
				continue
			}
			if ann[d.Digest] == nil {
				ann[d.Digest] = map[string]string{}
			}
			for k, v := range d.Annotations {
				ann[d.Digest][k] = v
			}
		}
	}
	return mp, ann
}
