package buildkit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/pkg/rootfs"
	"github.com/containerd/platforms"
	"github.com/moby/buildkit/snapshot"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// gcSnapshotLabel is the content label that keeps a snapshot alive in
// containerd's GC; the snapshotter's name completes it.
const gcSnapshotLabel = "containerd.io/gc.ref.snapshot."

// unpackImage unpacks the image at desc (for the host's platform) into the
// worker's snapshotter, as BuildKit's unpack=true, so that containerd can
// run it at once. The layers are the ones lade wrote in the manifest, so
// an empty layer lade dropped is not applied. The top snapshot, named by
// the layers' chain ID, is held by the export's lease while it is made and
// afterwards by a gc label on the image config. An image without a
// manifest for the host's platform, or without layers, is left packed, as
// in BuildKit. The layer blobs must be in the content store (unlazy).
func (i *instance) unpackImage(ctx context.Context, p *plan, desc ocispecs.Descriptor, name string) (err error) {
	sn, applier := i.e.opt.Snapshotter, i.e.opt.Applier
	if sn == nil || applier == nil {
		return errors.New("unpack=true: this worker has no snapshotter to unpack into: remove unpack=true")
	}
	host := platforms.Only(platforms.Normalize(platforms.DefaultSpec()))
	if !hasPlatform(p, host) {
		return nil
	}
	cs := i.e.opt.ContentStore
	mfst, err := images.Manifest(ctx, cs, desc, host)
	if err != nil {
		return fmt.Errorf("unpack %s: %w", name, err)
	}
	layers, err := manifestLayers(ctx, cs, mfst)
	if err != nil || len(layers) == 0 {
		return err
	}
	done := oneOff(ctx, "unpacking to "+name)
	defer func() { err = done(err) }()
	chain := make([]digest.Digest, len(layers))
	for n, l := range layers {
		chain[n] = l.Diff.Digest
	}
	chainID := identity.ChainID(chain).String()
	// ApplyLayers returns at once when the top snapshot exists: lease it
	// first, so that it cannot be removed before the config's label holds
	// it.
	if id, ok := leases.FromContext(ctx); ok {
		r := leases.Resource{ID: chainID, Type: "snapshots/" + sn.Name()}
		if err := i.e.opt.LeaseManager.AddResource(ctx, leases.Lease{ID: id}, r); err != nil {
			return fmt.Errorf("lease snapshot %s: %w", chainID, err)
		}
	}
	ctdsn, release := snapshot.NewContainerdSnapshotter(sn)
	defer func() { _ = release() }()
	applied, err := rootfs.ApplyLayers(ctx, layers, ctdsn, applier)
	if err != nil {
		return err
	}
	if applied.String() != chainID {
		return fmt.Errorf("unpacked chain %s, expected %s", applied, chainID)
	}
	key := gcSnapshotLabel + sn.Name()
	info := content.Info{Digest: mfst.Config.Digest, Labels: map[string]string{key: chainID}}
	if _, err := cs.Update(ctx, info, "labels."+key); err != nil {
		return fmt.Errorf("label config %s with its snapshot: %w", mfst.Config.Digest, err)
	}
	return nil
}

// hasPlatform reports whether the export has a platform m matches.
func hasPlatform(p *plan, m platforms.Matcher) bool {
	for _, pp := range p.platforms {
		if m.Match(pp.platform) {
			return true
		}
	}
	return false
}

// manifestLayers pairs the manifest's layer blobs with the config's
// diffIDs.
func manifestLayers(ctx context.Context, cs content.Provider, mfst ocispecs.Manifest) ([]rootfs.Layer, error) {
	b, err := content.ReadBlob(ctx, cs, mfst.Config)
	if err != nil {
		return nil, fmt.Errorf("read image config %s: %w", mfst.Config.Digest, err)
	}
	var img ocispecs.Image
	if err := json.Unmarshal(b, &img); err != nil {
		return nil, fmt.Errorf("image config %s: %w", mfst.Config.Digest, err)
	}
	ids := img.RootFS.DiffIDs
	if len(ids) != len(mfst.Layers) {
		return nil, fmt.Errorf("image config %s has %d diffIDs for %d layers", mfst.Config.Digest, len(ids), len(mfst.Layers))
	}
	out := make([]rootfs.Layer, len(ids))
	for n, id := range ids {
		out[n] = rootfs.Layer{
			Blob: mfst.Layers[n],
			Diff: ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageLayer, Digest: id},
		}
	}
	return out, nil
}
