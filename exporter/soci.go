package exporter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"

	"github.com/containerd/errdefs"
	"github.com/lade-build/lade/blobs"
	"github.com/lade-build/lade/soci"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// SOCI packaging, as soci-snapshotter's `soci convert` writes a SOCI-enabled
// image (its docs/soci-index-manifest-v2.md): per platform, a SOCI index
// manifest listing the zTOCs of the layers that have one stands in the
// image index beside the image manifest, which names it.
const (
	// SociIndexArtifactType is a SOCI index manifest's artifact type (v2).
	SociIndexArtifactType = "application/vnd.amazon.soci.index.v2+json"
	// AnnotationSociIndexDigest, on an image manifest, names its SOCI index.
	AnnotationSociIndexDigest = "com.amazon.soci.index-digest"
	// AnnotationSociManifestDigest, on a SOCI index's descriptor in the
	// image index, names the image manifest it belongs to.
	AnnotationSociManifestDigest = "com.amazon.soci.image-manifest-digest"
	// AnnotationSociLayerDigest and AnnotationSociLayerMediaType, on a zTOC
	// in a SOCI index, name its layer.
	AnnotationSociLayerDigest    = "com.amazon.soci.image-layer-digest"
	AnnotationSociLayerMediaType = "com.amazon.soci.image-layer-mediaType"
	annotationSociSpanSize       = "com.amazon.soci.span-size"
	annotationSociBuildTool      = "com.amazon.soci.build-tool-identifier"
)

// sociConfig is the SOCI index's config: the empty JSON object.
var sociConfig = []byte("{}")

// validateSoci checks the SOCI options against the rest.
func (o Options) validateSoci() error {
	if !o.Soci {
		if o.SociSpanSize != 0 || o.SociMinLayerSize != 0 {
			return errors.New("soci-span-size and soci-min-layer-size need soci=true")
		}
		return nil
	}
	if t := o.compression().Type; t != blobs.Gzip {
		return fmt.Errorf("soci=true needs compression=gzip (lade's gzip, whose blocks the zTOC checkpoints start at), not %s", t)
	}
	if o.Docker {
		return errors.New("soci=true needs OCI media types: a SOCI index is an OCI artifact (set oci-mediatypes=true)")
	}
	if o.SociSpanSize < 0 {
		return fmt.Errorf("soci-span-size %d is negative: use 0 for the default 4 MiB", o.SociSpanSize)
	}
	if o.SociMinLayerSize < -1 {
		return fmt.Errorf("soci-min-layer-size %d: use a size, 0 for the default 10 MiB or -1 for every layer", o.SociMinLayerSize)
	}
	return nil
}

// sociCompression returns comp building zTOCs into w's store when soci is on.
func (w *ImageWriter) sociCompression(ctx context.Context, comp blobs.Compression, opts Options) blobs.Compression {
	if !opts.Soci {
		return comp
	}
	comp.Soci = &blobs.Soci{
		SpanSize: opts.SociSpanSize, MinLayerSize: opts.SociMinLayerSize,
		Put: func(desc ocispec.Descriptor, data []byte) error {
			return writeBlob(ctx, w.store, desc, data, nil, opts.Progress, "ztoc")
		},
	}
	return comp
}

// writeSociIndex writes the SOCI index of one platform's layers (with their
// internal annotations), or returns nil when no layer has a zTOC. A layer
// whose cached blob names a zTOC no longer in the store gets none.
func (w *ImageWriter) writeSociIndex(ctx context.Context, layers []ocispec.Descriptor, opts Options) (*ocispec.Descriptor, error) {
	if !opts.Soci {
		return nil, nil
	}
	var ztocs []ocispec.Descriptor
	for _, l := range layers {
		d, err := digest.Parse(l.Annotations[blobs.AnnotationZtoc])
		if err != nil {
			continue
		}
		info, err := w.store.Info(ctx, d)
		if errdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("zTOC %s of layer %s: %w", d, l.Digest, err)
		}
		ann := map[string]string{AnnotationSociLayerMediaType: l.MediaType, AnnotationSociLayerDigest: l.Digest.String()}
		if s := l.Annotations[blobs.AnnotationZtocSpanSize]; s != "" {
			ann[annotationSociSpanSize] = s
		}
		ztocs = append(ztocs, ocispec.Descriptor{MediaType: blobs.MediaTypeZtoc, Digest: d, Size: info.Size, Annotations: ann})
	}
	if len(ztocs) == 0 {
		return nil, nil
	}
	cfg := ocispec.Descriptor{MediaType: SociIndexArtifactType, Digest: digest.FromBytes(sociConfig), Size: int64(len(sociConfig))}
	if err := writeBlob(ctx, w.store, cfg, sociConfig, nil, opts.Progress, "soci config"); err != nil {
		return nil, err
	}
	m := ocispec.Manifest{
		MediaType: ocispec.MediaTypeImageManifest, Config: cfg, Layers: ztocs,
		Annotations: map[string]string{annotationSociBuildTool: soci.BuildTool},
	}
	m.SchemaVersion = 2
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("marshal SOCI index: %w", err)
	}
	labels := map[string]string{"containerd.io/gc.ref.content.config": cfg.Digest.String()}
	for i, z := range ztocs {
		labels["containerd.io/gc.ref.content.ztoc."+strconv.Itoa(i)] = z.Digest.String()
	}
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: SociIndexArtifactType, Digest: digest.FromBytes(b), Size: int64(len(b))}
	return &desc, writeBlob(ctx, w.store, desc, b, labels, opts.Progress, "soci index")
}

// withSociIndex returns ann with the image manifest of platform naming idx.
func withSociIndex(ann Annotations, platform string, idx *ocispec.Descriptor) Annotations {
	if idx == nil {
		return ann
	}
	m := maps.Clone(ann.Manifest)
	if m == nil {
		m = map[string]map[string]string{}
	}
	p := maps.Clone(m[platform])
	if p == nil {
		p = map[string]string{}
	}
	p[AnnotationSociIndexDigest] = idx.Digest.String()
	m[platform] = p
	ann.Manifest = m
	return ann
}

// sociIndexEntry returns the image-index entry of a platform's SOCI index.
func sociIndexEntry(idx *ocispec.Descriptor, pr PlatformResult) *ocispec.Descriptor {
	if idx == nil {
		return nil
	}
	d := *idx
	p := pr.Platform
	d.Platform = &p
	d.Annotations = map[string]string{AnnotationSociManifestDigest: pr.Manifest.Digest.String()}
	return &d
}

// ztocResults notes each layer's zTOC in the results (pairs and results
// share their order).
func ztocResults(results []LayerResult, pairs []blobs.DiffPair) {
	for i, p := range pairs {
		if z := p.Blob.Annotations[blobs.AnnotationZtoc]; z != "" && i < len(results) {
			results[i].Ztoc = digest.Digest(z)
			results[i].ZtocSpans, _ = strconv.Atoi(p.Blob.Annotations[blobs.AnnotationZtocSpans])
		}
	}
}

// sociIndexManifests returns the SOCI indexes to list after the image
// manifests, with their GC labels numbered from n.
func sociIndexManifests(prs []PlatformResult, n int, labels map[string]string) []ocispec.Descriptor {
	var out []ocispec.Descriptor
	for _, pr := range prs {
		if pr.SociIndex != nil {
			labels["containerd.io/gc.ref.content.m."+strconv.Itoa(n+len(out))] = pr.SociIndex.Digest.String()
			out = append(out, *pr.SociIndex)
		}
	}
	return out
}
