package manifestlist

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/lade-build/lade/blobs"
	"github.com/lade-build/lade/exporter/archive"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// annotationReferenceType marks BuildKit attestation manifests in an index:
// they are not images and never become instances.
const annotationReferenceType = "vnd.docker.reference.type"

// Select says which instances of an image become list instances.
type Select struct {
	// All takes every image manifest of an index; otherwise only the one
	// for Platform.
	All bool
	// Platform picks the manifest of an index when All is false; nil means
	// the host's platform.
	Platform *ocispec.Platform
}

// Instances returns the manifests of the image rooted at root (a manifest,
// or an index and sel) as list instances: digest, size, media type and the
// platform read from each image's config (an index's platform, when the
// config has none). Attestation manifests are skipped. Every index,
// manifest and config read is verified against its digest.
func Instances(ctx context.Context, p content.Provider, root ocispec.Descriptor, sel Select) ([]ocispec.Descriptor, error) {
	g, err := archive.Walk(ctx, p, root)
	if err != nil {
		return nil, err
	}
	var out []ocispec.Descriptor
	for _, img := range g.Images {
		if _, ok := img.Manifest.Annotations[annotationReferenceType]; ok {
			continue
		}
		plat, err := ConfigPlatform(ctx, p, img.Config)
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %w", img.Manifest.Digest, err)
		}
		if plat.OS == "" || plat.Architecture == "" {
			if img.Manifest.Platform == nil {
				return nil, fmt.Errorf("manifest %s: its config names no os and architecture: give the platform", img.Manifest.Digest)
			}
			plat = *img.Manifest.Platform
		}
		out = append(out, ocispec.Descriptor{
			MediaType: img.Manifest.MediaType, Digest: img.Manifest.Digest, Size: img.Manifest.Size,
			Platform: &plat,
		})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("image %s has no image manifest: %w", root.Digest, errdefs.ErrNotFound)
	}
	if sel.All || !archive.IsIndex(root.MediaType) {
		return out, nil
	}
	want := platforms.DefaultSpec()
	if sel.Platform != nil {
		want = *sel.Platform
	}
	match := platforms.Only(want)
	for _, d := range out {
		if match.Match(*d.Platform) {
			return []ocispec.Descriptor{d}, nil
		}
	}
	return nil, fmt.Errorf("image %s has no manifest for %s (add them all with --all): %w", root.Digest, platforms.Format(want), errdefs.ErrNotFound)
}

// ConfigPlatform reads the platform fields of an image config: os,
// architecture, variant, os.version and os.features. A config without them
// gives an empty platform.
func ConfigPlatform(ctx context.Context, p content.Provider, config ocispec.Descriptor) (ocispec.Platform, error) {
	b, err := archive.ReadVerified(ctx, p, config)
	if err != nil {
		return ocispec.Platform{}, fmt.Errorf("read config: %w", err)
	}
	var plat ocispec.Platform
	if err := json.Unmarshal(b, &plat); err != nil {
		return ocispec.Platform{}, fmt.Errorf("decode config %s: %w", config.Digest, err)
	}
	if plat.OS == "" || plat.Architecture == "" {
		return plat, nil
	}
	return platforms.Normalize(plat), nil
}

// layerToDocker maps OCI layer media types to Docker's.
var layerToDocker = map[string]string{
	ocispec.MediaTypeImageLayer:     blobs.MediaTypeDockerLayer,
	ocispec.MediaTypeImageLayerGzip: blobs.MediaTypeDockerLayerGzip,
	archive.MediaTypeDockerLayer:    archive.MediaTypeDockerLayer,
	blobs.MediaTypeDockerLayerGzip:  blobs.MediaTypeDockerLayerGzip,
}

// ToDocker returns inst as a Docker schema 2 manifest: inst itself when it
// is one, else a converted copy written into store (same config bytes and
// layer blobs, Docker media types, with GC labels). Its platform is kept;
// annotations are dropped, as Docker manifests have none. zstd layers have
// no Docker media type and are an error.
func ToDocker(ctx context.Context, store Store, inst ocispec.Descriptor) (ocispec.Descriptor, error) {
	if inst.MediaType == archive.MediaTypeDockerManifest {
		inst.Annotations = nil
		return inst, nil
	}
	b, err := archive.ReadVerified(ctx, store, inst)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("decode manifest %s: %w", inst.Digest, err)
	}
	out := ocispec.Manifest{MediaType: archive.MediaTypeDockerManifest, Config: bare(m.Config)}
	out.SchemaVersion = 2
	out.Config.MediaType = archive.MediaTypeDockerConfig
	for _, l := range m.Layers {
		mt, ok := layerToDocker[l.MediaType]
		if !ok {
			return ocispec.Descriptor{}, fmt.Errorf("manifest %s: layer %s (%s) has no Docker media type: keep an OCI list", inst.Digest, l.Digest, l.MediaType)
		}
		d := bare(l)
		d.MediaType = mt
		out.Layers = append(out.Layers, d)
	}
	desc, err := writeManifest(ctx, store, out)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc.Platform = inst.Platform
	return desc, nil
}

// bare returns d with only media type, digest, size and URLs.
func bare(d ocispec.Descriptor) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size, URLs: slices.Clone(d.URLs)}
}

// writeManifest writes m (a manifest whose MediaType is set) with GC labels
// for its config and layers and returns its descriptor.
func writeManifest(ctx context.Context, store content.Ingester, m ocispec.Manifest) (ocispec.Descriptor, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("marshal manifest: %w", err)
	}
	desc := ocispec.Descriptor{MediaType: m.MediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
	children := append([]ocispec.Descriptor{m.Config}, m.Layers...)
	return desc, writeBlob(ctx, store, desc, b, archive.GCLabels(children))
}
