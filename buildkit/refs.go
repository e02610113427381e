package buildkit

import (
	"context"
	"fmt"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/pkg/labels"
	"github.com/lade-build/lade/blobs"
	ladecache "github.com/lade-build/lade/cache"
	"github.com/moby/buildkit/cache"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/solver"
	"github.com/moby/buildkit/util/contentutil"
	"github.com/moby/buildkit/util/converter"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// exportLayers makes sure every layer of every platform's ref has a blob,
// computed by BuildKit's blob pipeline with lade's compressor, and records
// each platform's remote (descriptors bottom first, and a provider that
// can fetch lazy base layers).
func (i *instance) exportLayers(ctx context.Context, plan *plan, sid string) error {
	done := oneOff(ctx, "exporting layers")
	eg, ectx := errgroup.WithContext(ctx)
	for _, pp := range plan.platforms {
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
			return nil
		})
	}
	return done(eg.Wait())
}

// layerMeta is what history synthesis needs of one BuildKit ref.
type layerMeta struct {
	description string
	createdAt   time.Time
}

// layerMetas returns the description and creation time of each layer of
// ref's chain, bottom first; n entries, empty when unknown.
func layerMetas(ref cache.ImmutableRef, n int) []layerMeta {
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

// rewriteTimestamps rewrites the new layers of a platform with file times
// clamped to epoch, with BuildKit's converter (so the diffIDs are the ones
// stock BuildKit gives) and lade's compressor. Leading layers equal to the
// base image's are kept, as BuildKit does.
func (i *instance) rewriteTimestamps(ctx context.Context, pp *platformPlan, epoch *time.Time) error {
	remote := pp.remote
	cs := contentutil.NewStoreWithProvider(i.e.opt.ContentStore, remote.Provider)
	descs := append([]ocispecs.Descriptor(nil), remote.Descriptors...)
	done := oneOff(ctx, fmt.Sprintf("rewriting layers with source-date-epoch %d (%s)", epoch.Unix(), epoch.UTC()))
	eg, ectx := errgroup.WithContext(ctx)
	diverged := false
	for n, desc := range descs {
		diffID := digest.Digest(desc.Annotations[labels.LabelUncompressed])
		var immutable map[digest.Digest]struct{}
		if base := pp.baseDiffIDs; !diverged && n < len(base) {
			if base[n] == diffID {
				continue
			}
			diverged = true
			immutable = map[digest.Digest]struct{}{base[n]: {}}
		}
		eg.Go(func() error {
			conv, err := converter.NewWithRewriteTimestamp(ectx, cs, desc, i.s.refCfg.Compression, epoch, immutable)
			if err != nil || conv == nil {
				return err
			}
			nd, err := conv(ectx, cs, desc)
			if err != nil {
				return fmt.Errorf("rewrite layer %d/%d to source-date-epoch %d: %w", n+1, len(descs), epoch.Unix(), err)
			}
			if nd != nil {
				descs[n] = *nd
			}
			return nil
		})
	}
	if err := done(eg.Wait()); err != nil {
		return err
	}
	pp.remote = &solver.Remote{Descriptors: descs, Provider: cs}
	return nil
}

// ladeChain turns a platform's remote into a lade ref chain whose layers
// are the stored BuildKit blobs: lade reads no layer data, it only
// normalizes history, drops empty layers and writes the image.
func ladeChain(pp *platformPlan) (ladecache.Ref, []bool, error) {
	var top ladecache.Ref
	empty := make([]bool, len(pp.remote.Descriptors))
	for n, d := range pp.remote.Descriptors {
		diffID := digest.Digest(d.Annotations[labels.LabelUncompressed])
		if diffID == "" {
			return nil, nil, fmt.Errorf("layer %d (%s) has no diffID: BuildKit's blob carries no %s annotation", n, d.Digest, labels.LabelUncompressed)
		}
		empty[n] = diffID == blobs.EmptyTarDiffID
		var meta layerMeta
		if n < len(pp.metas) {
			meta = pp.metas[n]
		}
		r, err := ladecache.NewStoredRef(providerOf(pp.remote), ladecache.Blob{Descriptor: d, DiffID: diffID}, top,
			ladecache.StoredOptions{Description: meta.description, CreatedAt: meta.createdAt})
		if err != nil {
			return nil, nil, err
		}
		top = r
	}
	return top, empty, nil
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
		if u, ok := pp.remote.Provider.(cache.Unlazier); ok {
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
