package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/platforms"
	"github.com/lade-build/lade/cache"
	"github.com/lade-build/lade/imagestore"
	"github.com/lade-build/lade/transfer"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// base is a base image resolved for one platform.
type base struct {
	top        cache.Ref
	config     []byte
	historyLen int
}

// resolveImage brings an image reference into the store and returns its
// root descriptor: a store name, oci:DIR[:TAG], oci-archive:FILE[:TAG],
// docker-archive:FILE or docker://REF (short names resolved by the
// registries configuration).
func resolveImage(ctx context.Context, s *imagestore.Store, ref string, reg registrySettings) (ocispec.Descriptor, error) {
	return transfer.Resolve(ctx, s, ref, reg.transferOptions(nil))
}

// loadBase resolves ref and returns its layers (as stored refs, reused as
// they are) and config for platform p.
func loadBase(ctx context.Context, s *imagestore.Store, ref string, p ocispec.Platform, reg registrySettings) (base, error) {
	root, err := resolveImage(ctx, s, ref, reg)
	if err != nil {
		return base{}, fmt.Errorf("base %s: %w", ref, err)
	}
	mfst, err := platformManifest(ctx, s.Content(), root, p)
	if err != nil {
		return base{}, fmt.Errorf("base %s: %w", ref, err)
	}
	cfg, err := readVerified(ctx, s.Content(), mfst.Config)
	if err != nil {
		return base{}, fmt.Errorf("base %s: read config: %w", ref, err)
	}
	var img ocispec.Image
	if err := json.Unmarshal(cfg, &img); err != nil {
		return base{}, fmt.Errorf("base %s: config: %w", ref, err)
	}
	if len(img.RootFS.DiffIDs) != len(mfst.Layers) {
		return base{}, fmt.Errorf("base %s: config lists %d diff_ids for %d layers", ref, len(img.RootFS.DiffIDs), len(mfst.Layers))
	}
	var descs []string
	for _, h := range img.History {
		if !h.EmptyLayer {
			descs = append(descs, h.CreatedBy)
		}
	}
	var top cache.Ref
	for i, l := range mfst.Layers {
		opts := cache.StoredOptions{}
		if i < len(descs) {
			opts.Description = descs[i]
		}
		r, err := cache.NewStoredRef(s.Content(), cache.Blob{Descriptor: l, DiffID: img.RootFS.DiffIDs[i]}, top, opts)
		if err != nil {
			return base{}, fmt.Errorf("base %s: layer %s: %w", ref, l.Digest, err)
		}
		top = r
	}
	return base{top: top, config: cfg, historyLen: len(img.History)}, nil
}

// platformManifest returns the manifest of root for platform p.
func platformManifest(ctx context.Context, p content.Provider, root ocispec.Descriptor, want ocispec.Platform) (ocispec.Manifest, error) {
	var m ocispec.Manifest
	desc := root
	if images.IsIndexType(root.MediaType) {
		var idx ocispec.Index
		if err := readJSON(ctx, p, root, &idx); err != nil {
			return m, err
		}
		match := platforms.Only(want)
		found := false
		for _, d := range idx.Manifests {
			if d.Platform != nil && match.Match(*d.Platform) && images.IsManifestType(d.MediaType) {
				desc, found = d, true
				break
			}
		}
		if !found {
			return m, fmt.Errorf("no manifest for platform %s", platforms.Format(want))
		}
	}
	if !images.IsManifestType(desc.MediaType) {
		return m, fmt.Errorf("unsupported media type %s", desc.MediaType)
	}
	return m, readJSON(ctx, p, desc, &m)
}

// readVerified reads a small blob and checks its size and digest.
func readVerified(ctx context.Context, p content.Provider, d ocispec.Descriptor) ([]byte, error) {
	b, err := content.ReadBlob(ctx, p, d)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", d.Digest, err)
	}
	if int64(len(b)) != d.Size || digest.FromBytes(b) != d.Digest {
		return nil, fmt.Errorf("blob %s is corrupt: its content does not match its digest (run lade check)", d.Digest)
	}
	return b, nil
}

// readJSON reads a small verified blob and decodes its JSON into v.
func readJSON(ctx context.Context, p content.Provider, d ocispec.Descriptor, v any) error {
	b, err := readVerified(ctx, p, d)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %s: %w", d.Digest, err)
	}
	return nil
}
