package exporter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"strconv"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	"github.com/lade-build/lade/blobs"
	"github.com/lade-build/lade/progress"
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

// layerZtoc is the zTOC of one layer.
type layerZtoc struct {
	desc  ocispec.Descriptor
	spans int
}

// writeSociIndex writes the SOCI index of one platform's layers (with their
// internal annotations) and returns it with each layer's zTOC, or nil when
// no layer has one. A layer computed with soci has its zTOC already; a
// stored gzip layer (a base layer, or one BuildKit's pipeline compressed)
// gets one by reading its blob once (see soci.FromGzip).
func (w *ImageWriter) writeSociIndex(ctx context.Context, layers []ocispec.Descriptor, opts Options) (*ocispec.Descriptor, map[digest.Digest]layerZtoc, error) {
	if !opts.Soci {
		return nil, nil, nil
	}
	var ztocs []ocispec.Descriptor
	found := map[digest.Digest]layerZtoc{}
	for _, l := range layers {
		z, ok, err := w.layerZtoc(ctx, l, opts)
		if err != nil {
			return nil, nil, err
		}
		if !ok {
			continue
		}
		found[l.Digest] = z
		ann := map[string]string{AnnotationSociLayerMediaType: l.MediaType, AnnotationSociLayerDigest: l.Digest.String(),
			annotationSociSpanSize: strconv.FormatInt(sociSpanSize(opts), 10)}
		ztocs = append(ztocs, ocispec.Descriptor{MediaType: blobs.MediaTypeZtoc, Digest: z.desc.Digest, Size: z.desc.Size, Annotations: ann})
	}
	if len(ztocs) == 0 {
		return nil, nil, nil
	}
	idx, err := w.writeSociManifest(ctx, ztocs, opts)
	return idx, found, err
}

func sociSpanSize(opts Options) int64 {
	if opts.SociSpanSize > 0 {
		return opts.SociSpanSize
	}
	return soci.DefaultSpanSize
}

// layerZtoc finds or builds the zTOC of layer l; ok is false when it has
// none: under the minimum size, not gzip, or a blob that is not valid gzip
// (said in progress).
func (w *ImageWriter) layerZtoc(ctx context.Context, l ocispec.Descriptor, opts Options) (layerZtoc, bool, error) {
	if d, err := digest.Parse(l.Annotations[blobs.AnnotationZtoc]); err == nil {
		info, err := w.store.Info(ctx, d)
		if err == nil {
			spans, _ := strconv.Atoi(l.Annotations[blobs.AnnotationZtocSpans])
			return layerZtoc{desc: ocispec.Descriptor{MediaType: blobs.MediaTypeZtoc, Digest: d, Size: info.Size}, spans: spans}, true, nil
		}
		if !errdefs.IsNotFound(err) {
			return layerZtoc{}, false, fmt.Errorf("zTOC %s of layer %s: %w", d, l.Digest, err)
		}
	}
	remembered, ok := rememberedZtocs.LoadAndDelete(rememberedKey{l.Digest, sociSpanSize(opts)})
	if t, err := blobs.TypeOfMediaType(l.MediaType); err != nil || t != blobs.Gzip || l.Size < sociMinLayerSize(opts) {
		return layerZtoc{}, false, nil
	}
	if v := remembered; ok {
		data := v.([]byte)
		spans, _ := soci.Spans(data)
		desc := ocispec.Descriptor{MediaType: blobs.MediaTypeZtoc, Digest: digest.FromBytes(data), Size: int64(len(data))}
		if err := writeBlob(ctx, w.store, desc, data, nil, opts.Progress, "ztoc"); err != nil {
			return layerZtoc{}, false, err
		}
		z := layerZtoc{desc: desc, spans: spans}
		if reflect.TypeOf(w.store).Comparable() {
			storedZtocs.Store(storedZtocKey{store: w.store, layer: l.Digest, span: sociSpanSize(opts)}, z)
		}
		return z, true, nil
	}
	if !reflect.TypeOf(w.store).Comparable() {
		return w.buildStoredZtoc(ctx, l, opts)
	}
	key := storedZtocKey{store: w.store, layer: l.Digest, span: sociSpanSize(opts)}
	if v, ok := storedZtocs.Load(key); ok {
		z := v.(layerZtoc)
		if _, err := w.store.Info(ctx, z.desc.Digest); err == nil {
			return z, true, nil
		}
	}
	if z, ok := w.labelledZtoc(ctx, l, sociSpanSize(opts)); ok {
		storedZtocs.Store(key, z)
		return z, true, nil
	}
	z, ok, err := w.buildStoredZtoc(ctx, l, opts)
	if ok {
		storedZtocs.Store(key, z)
		w.labelZtoc(ctx, l, sociSpanSize(opts), z)
	}
	return z, ok, err
}

// labelZtocPrefix + the span size labels a stored layer's blob with the
// zTOC lade built for it, so that a later process (the next lade export,
// a restarted lade-buildkitd) reuses it instead of reading the layer
// again; labelZtocGCPrefix keeps the zTOC as long as the layer. v2: zTOCs
// of any gzip, checkpoints at any bit.
const (
	labelZtocPrefix   = "io.github.lade-build.ztoc.v2.span."
	labelZtocGCPrefix = "containerd.io/gc.ref.content.lade-ztoc."
)

// labelUpdater is a store that keeps labels (containerd's content stores).
type labelUpdater interface {
	Update(ctx context.Context, info content.Info, fieldpaths ...string) (content.Info, error)
}

// labelZtoc records z on the layer blob, where the store keeps labels.
// It is a cache: a store that refuses costs a read of the layer next time.
func (w *ImageWriter) labelZtoc(ctx context.Context, l ocispec.Descriptor, span int64, z layerZtoc) {
	u, ok := w.store.(labelUpdater)
	if !ok {
		return
	}
	k, gc := labelZtocPrefix+strconv.FormatInt(span, 10), labelZtocGCPrefix+strconv.FormatInt(span, 10)
	info := content.Info{Digest: l.Digest, Labels: map[string]string{k: z.desc.Digest.String(), gc: z.desc.Digest.String()}}
	_, _ = u.Update(ctx, info, "labels."+k, "labels."+gc)
}

// labelledZtoc finds the zTOC labelZtoc recorded for layer l, if the store
// still has it.
func (w *ImageWriter) labelledZtoc(ctx context.Context, l ocispec.Descriptor, span int64) (layerZtoc, bool) {
	info, err := w.store.Info(ctx, l.Digest)
	if err != nil {
		return layerZtoc{}, false
	}
	d, err := digest.Parse(info.Labels[labelZtocPrefix+strconv.FormatInt(span, 10)])
	if err != nil {
		return layerZtoc{}, false
	}
	zi, err := w.store.Info(ctx, d)
	if err != nil {
		return layerZtoc{}, false
	}
	desc := ocispec.Descriptor{MediaType: blobs.MediaTypeZtoc, Digest: d, Size: zi.Size}
	data, err := content.ReadBlob(ctx, w.store, desc)
	if err != nil {
		return layerZtoc{}, false
	}
	spans, ok := soci.Spans(data)
	return layerZtoc{desc: desc, spans: spans}, ok
}

// RememberZtoc hands the exporter the zTOC of a layer blob built while the
// blob was compressed outside it (lade-buildkitd's BuildKit pipeline, with
// a gzip writer given blobs.Soci): the next export with soci=true and that
// span size uses it instead of reading the blob.
func RememberZtoc(layer digest.Digest, spanSize int64, data []byte) {
	rememberedZtocs.Store(rememberedKey{layer, spanSize}, data)
}

// rememberedZtocs holds RememberZtoc's zTOCs until an export takes them.
var rememberedZtocs sync.Map

type rememberedKey struct {
	layer digest.Digest
	span  int64
}

// storedZtocs remembers, per store, the zTOCs built for stored layers, so
// that a long-lived writer (lade-buildkitd's) reads a layer blob for its
// zTOC once, not at every export.
var storedZtocs sync.Map

type storedZtocKey struct {
	store Store
	layer digest.Digest
	span  int64
}

// buildStoredZtoc builds the zTOC of a stored gzip layer from one read of
// its blob.
func (w *ImageWriter) buildStoredZtoc(ctx context.Context, l ocispec.Descriptor, opts Options) (layerZtoc, bool, error) {
	task := progress.Start(opts.Progress, "ztoc:"+l.Digest.String(), "building zTOC of stored layer "+l.Digest.String()+" (read once)", l.Size)
	ra, err := w.store.ReaderAt(ctx, l)
	if err != nil {
		task.Done("", err)
		return layerZtoc{}, false, fmt.Errorf("read layer %s for its zTOC: %w", l.Digest, err)
	}
	defer ra.Close()
	z, err := soci.FromGzip(io.NewSectionReader(ra, 0, l.Size), sociSpanSize(opts), pargzipBlockSize)
	if err != nil {
		task.Done("no zTOC: "+err.Error(), nil)
		return layerZtoc{}, false, nil
	}
	data := z.Marshal()
	desc := ocispec.Descriptor{MediaType: blobs.MediaTypeZtoc, Digest: digest.FromBytes(data), Size: int64(len(data))}
	task.Add(l.Size)
	task.Done("", nil)
	if err := writeBlob(ctx, w.store, desc, data, nil, opts.Progress, "ztoc"); err != nil {
		return layerZtoc{}, false, err
	}
	return layerZtoc{desc: desc, spans: z.Spans}, true, nil
}

// pargzipBlockSize is the uncompressed size of lade's gzip blocks.
const pargzipBlockSize = 1 << 20

func sociMinLayerSize(opts Options) int64 {
	switch {
	case opts.SociMinLayerSize == 0:
		return soci.DefaultMinLayerSize
	case opts.SociMinLayerSize < 0:
		return 0
	}
	return opts.SociMinLayerSize
}

// writeSociManifest writes the SOCI index manifest listing ztocs.
func (w *ImageWriter) writeSociManifest(ctx context.Context, ztocs []ocispec.Descriptor, opts Options) (*ocispec.Descriptor, error) {
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

// ztocResults notes each layer's zTOC in the results.
func ztocResults(results []LayerResult, found map[digest.Digest]layerZtoc) {
	for i, r := range results {
		if z, ok := found[r.Digest]; ok && !r.Dropped {
			results[i].Ztoc, results[i].ZtocSpans = z.desc.Digest, z.spans
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
