package manifestlist

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/lade-build/lade/blobs"
	"github.com/lade-build/lade/cache"
	"github.com/lade-build/lade/exporter/archive"
	"github.com/lade-build/lade/progress"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// AnnotationZstd marks an instance whose layers are zstd-compressed, as
// containers/image and buildah write it: consumers that can read zstd may
// prefer it, others skip it.
const AnnotationZstd = "io.github.containers.compression.zstd"

// Store is the content store variants are written to and read from.
// containerd's content.Store satisfies it.
type Store interface {
	blobs.Store
	content.Provider
}

// VariantOptions are the optional inputs of Variant. The zero value is
// valid.
type VariantOptions struct {
	// Concurrency bounds the layers recompressed at once; 0 means
	// GOMAXPROCS.
	Concurrency int
	// Cache remembers recompressed blobs across calls; nil disables it.
	Cache blobs.Cache
	// Locker, with Cache, makes processes sharing a store recompress each
	// layer once.
	Locker blobs.Locker
	// Progress receives a vertex per layer; nil discards events.
	Progress progress.Writer
}

// Variant writes a compression variant of the image manifest inst into
// store: an OCI manifest with the same config (same bytes and digest) whose
// layers are inst's recompressed with comp (each blob's diffID is checked
// as it is read), and returns its descriptor with inst's platform. A zstd
// or zstd:chunked variant carries the AnnotationZstd annotation, and
// zstd:chunked layers their TOC annotations. When inst's layers already
// all have comp's compression the variant is inst's own content as an OCI
// manifest.
func Variant(ctx context.Context, store Store, inst ocispec.Descriptor, comp blobs.Compression, opts VariantOptions) (ocispec.Descriptor, error) {
	if err := comp.Validate(); err != nil {
		return ocispec.Descriptor{}, err
	}
	m, diffIDs, err := readImage(ctx, store, inst)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	var top cache.Ref
	for i, l := range m.Layers {
		r, err := cache.NewStoredRef(store, cache.Blob{Descriptor: l, DiffID: diffIDs[i]}, top, cache.StoredOptions{})
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("manifest %s: layer %d: %w", inst.Digest, i, err)
		}
		top = r
	}
	pairs, err := blobs.GetDiffPairs(ctx, store, top, blobs.Options{
		Compression: comp, Force: true, Concurrency: opts.Concurrency,
		Cache: opts.Cache, Locker: opts.Locker, Progress: opts.Progress,
	})
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("recompress %s to %s: %w", inst.Digest, comp.Type, err)
	}
	out := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: bare(m.Config)}
	out.SchemaVersion = 2
	out.Config.MediaType = ocispec.MediaTypeImageConfig
	for _, p := range pairs {
		d := bare(p.Blob)
		if p.Compression == blobs.ZstdChunked {
			d.Annotations = zstdChunkedAnnotations(p.Blob.Annotations)
		}
		if d.MediaType, err = ociLayerType(p.Blob.MediaType); err != nil {
			return ocispec.Descriptor{}, err
		}
		out.Layers = append(out.Layers, d)
	}
	desc, err := writeManifest(ctx, store, out)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc.Platform = inst.Platform
	if comp.Type == blobs.Zstd || comp.Type == blobs.ZstdChunked {
		desc.Annotations = map[string]string{AnnotationZstd: "true"}
	}
	return desc, nil
}

// zstdChunkedAnnotations keeps a zstd:chunked layer's TOC annotations,
// which its partial pulls read from the manifest.
func zstdChunkedAnnotations(m map[string]string) map[string]string {
	out := map[string]string{}
	for _, k := range blobs.ZstdChunkedAnnotationKeys {
		if v, ok := m[k]; ok {
			out[k] = v
		}
	}
	return out
}

// ociLayerType maps a layer media type to its OCI form.
func ociLayerType(mt string) (string, error) {
	switch mt {
	case ocispec.MediaTypeImageLayer, ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageLayerZstd:
		return mt, nil
	case blobs.MediaTypeDockerLayer:
		return ocispec.MediaTypeImageLayer, nil
	case blobs.MediaTypeDockerLayerGzip:
		return ocispec.MediaTypeImageLayerGzip, nil
	case blobs.MediaTypeDockerLayerZstd:
		return ocispec.MediaTypeImageLayerZstd, nil
	}
	return "", fmt.Errorf("layer media type %s has no OCI form", mt)
}

// readImage reads a manifest and its config's diffIDs, checking that they
// match the layers.
func readImage(ctx context.Context, p content.Provider, inst ocispec.Descriptor) (ocispec.Manifest, []digest.Digest, error) {
	var m ocispec.Manifest
	if !archive.IsManifest(inst.MediaType) {
		return m, nil, fmt.Errorf("%s is a %s, not an image manifest", inst.Digest, archive.Kind(inst.MediaType))
	}
	b, err := archive.ReadVerified(ctx, p, inst)
	if err != nil {
		return m, nil, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, nil, fmt.Errorf("decode manifest %s: %w", inst.Digest, err)
	}
	cb, err := archive.ReadVerified(ctx, p, m.Config)
	if err != nil {
		return m, nil, fmt.Errorf("manifest %s: config: %w", inst.Digest, err)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(cb, &cfg); err != nil {
		return m, nil, fmt.Errorf("manifest %s: decode config: %w", inst.Digest, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return m, nil, fmt.Errorf("manifest %s: config lists %d diff_ids for %d layers", inst.Digest, len(cfg.RootFS.DiffIDs), len(m.Layers))
	}
	return m, cfg.RootFS.DiffIDs, nil
}
