package exporter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/platforms"
	"github.com/lade-build/lade/blobs"
	"github.com/lade-build/lade/cache"
	"github.com/lade-build/lade/progress"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Store is the content store an ImageWriter writes into: blobs are written,
// checked and read back. containerd's content.Store satisfies it.
type Store interface {
	blobs.Store
	content.Provider
}

// ImageWriter writes images into a content store. It is safe for concurrent
// use; identical layer work of concurrent commits runs once.
//
// Commit does not take a lease: a caller whose store collects garbage (a
// containerd metadata store) holds one around Commit and whatever names or
// pushes the result.
type ImageWriter struct {
	store    Store
	computer *blobs.Computer
	now      func() time.Time
}

// NewImageWriter returns an ImageWriter over store.
func NewImageWriter(store Store) *ImageWriter {
	return &ImageWriter{store: store, computer: blobs.NewComputer(store), now: time.Now}
}

// platformJob is one platform being committed.
type platformJob struct {
	src      PlatformSource
	platform ocispec.Platform
	config   *imageConfig
	// epoch is the platform's SOURCE_DATE_EPOCH (its own or the options').
	epoch *time.Time
}

// Commit computes every layer of src, normalizes history, writes configs,
// manifests and (for several platforms or opts.Index) an index, and returns
// the root descriptor with per-layer metadata.
func (w *ImageWriter) Commit(ctx context.Context, src Source, opts Options) (Result, error) {
	if err := opts.Validate(); err != nil {
		return Result{}, err
	}
	ann, err := normalizeAnnotations(src, opts)
	if err != nil {
		return Result{}, err
	}
	jobs, err := w.prepare(src, opts)
	if err != nil {
		return Result{}, err
	}
	pw := progress.OrDiscard(opts.Progress)
	task := progress.Start(pw, "exporting-layers", "exporting layers", 0)
	pairs, err := w.computeLayers(ctx, jobs, opts)
	task.Done("", err)
	if err != nil {
		return Result{}, err
	}
	res := Result{}
	for i, j := range jobs {
		pr, err := w.commitPlatform(ctx, j, pairs[i], ann, opts)
		if err != nil {
			return Result{}, fmt.Errorf("platform %s: %w", platforms.Format(j.platform), err)
		}
		res.Platforms = append(res.Platforms, pr)
	}
	res.Created = w.rootCreated(jobs, opts)
	if len(jobs) == 1 && !opts.Index && res.Platforms[0].SociIndex == nil {
		res.Descriptor = res.Platforms[0].Manifest
		// The manifest-descriptor annotations stay on the root, so they
		// reach index.json and the response as in BuildKit.
		res.Descriptor.Platform = nil
		return res, nil
	}
	res.Descriptor, err = w.writeIndex(ctx, res.Platforms, ann, opts)
	return res, err
}

// computeLayers computes the diff pairs of every platform's chain. With
// RewriteTimestamp, platforms are computed in groups of one epoch each, so
// that every platform's new layers are clamped to its own epoch (a layer
// shared by platforms of different epochs is computed once per epoch).
func (w *ImageWriter) computeLayers(ctx context.Context, jobs []*platformJob, opts Options) ([][]blobs.DiffPair, error) {
	bopts := blobs.Options{
		Compression: w.sociCompression(ctx, opts.compression(), opts), Force: opts.ForceCompression,
		Concurrency: opts.Concurrency, Cache: opts.Cache, Progress: opts.Progress,
		Locker: opts.Locker,
	}
	groups := map[int64][]int{}
	var order []int64
	for i, j := range jobs {
		var key int64
		if opts.RewriteTimestamp {
			key = j.epoch.UnixNano()
		}
		if _, ok := groups[key]; !ok {
			order = append(order, key)
		}
		groups[key] = append(groups[key], i)
	}
	pairs := make([][]blobs.DiffPair, len(jobs))
	for _, key := range order {
		idx := groups[key]
		tops := make([]cache.Ref, len(idx))
		for n, i := range idx {
			tops[n] = jobs[i].src.Ref
		}
		if opts.RewriteTimestamp {
			bopts.Epoch = jobs[idx[0]].epoch
		}
		got, err := w.computer.Compute(ctx, tops, bopts)
		if err != nil {
			return nil, err
		}
		for n, i := range idx {
			pairs[i] = got[n]
		}
	}
	return pairs, nil
}

// prepare validates the source and parses platforms and configs.
func (w *ImageWriter) prepare(src Source, opts Options) ([]*platformJob, error) {
	if len(src.Platforms) == 0 {
		return nil, errors.New("nothing to export: the source has no platform")
	}
	seen := map[string]bool{}
	var jobs []*platformJob
	for _, ps := range src.Platforms {
		p, err := ParsePlatform(ps.Platform)
		if err != nil {
			return nil, err
		}
		key := platforms.Format(p)
		if seen[key] {
			return nil, fmt.Errorf("platform %s given twice: give each platform once", key)
		}
		seen[key] = true
		raw := ps.Config
		if raw == nil {
			raw = DefaultConfig(p)
		}
		cfg, err := parseConfig(raw)
		if err != nil {
			return nil, fmt.Errorf("platform %s: %w", key, err)
		}
		cfg.setDefault("os", p.OS)
		cfg.setDefault("architecture", p.Architecture)
		cfg.setDefault("variant", p.Variant)
		if ps.BaseLayers < 0 {
			return nil, fmt.Errorf("platform %s: base layer count %d is negative", key, ps.BaseLayers)
		}
		if ps.BaseHistory < 0 || ps.BaseHistory > len(cfg.History) {
			return nil, fmt.Errorf("platform %s: base history count %d out of range 0..%d", key, ps.BaseHistory, len(cfg.History))
		}
		j := &platformJob{src: ps, platform: p, config: cfg, epoch: opts.epochOf(ps)}
		if err := checkEpoch(ps.Epoch); err != nil {
			return nil, fmt.Errorf("platform %s: %w", key, err)
		}
		if opts.RewriteTimestamp && j.epoch == nil {
			return nil, fmt.Errorf("platform %s: rewrite-timestamp needs an epoch: set source-date-epoch (or SOURCE_DATE_EPOCH)", key)
		}
		jobs = append(jobs, j)
	}
	return jobs, nil
}

// clock is the export's "now": opts.Created, or the current time.
func (w *ImageWriter) clock(opts Options) time.Time {
	if opts.Created != nil {
		return *opts.Created
	}
	return w.now()
}

// rootCreated is the time stamped on the root: the latest config created.
func (w *ImageWriter) rootCreated(jobs []*platformJob, opts Options) time.Time {
	var t time.Time
	for _, j := range jobs {
		if c := imageCreated(j.config, j.epoch, w.clock(opts)); c.After(t) {
			t = c
		}
	}
	return t
}

// commitPlatform normalizes history, writes the config and the manifest.
func (w *ImageWriter) commitPlatform(ctx context.Context, j *platformJob, pairs []blobs.DiffPair, ann Annotations, opts Options) (PlatformResult, error) {
	chain := cache.Chain(j.src.Ref)
	metas := make([]layerMeta, len(pairs))
	for i, p := range pairs {
		metas[i] = layerMeta{Empty: p.Empty, Description: chain[i].Description(), CreatedAt: chain[i].CreatedAt()}
	}
	created := imageCreated(j.config, j.epoch, w.clock(opts))
	norm, err := normalizeHistory(j.config.History, metas, historyRules{
		KeepEmpty: opts.KeepEmptyLayers, Repair: opts.RepairHistory,
		Created: created, Epoch: j.epoch, BaseHistory: j.src.BaseHistory, BaseLayers: j.src.BaseLayers,
	})
	if err != nil {
		return PlatformResult{}, err
	}
	j.config.History = norm.History
	layers, results, err := w.layerDescriptors(ctx, pairs, norm, opts)
	if err != nil {
		return PlatformResult{}, err
	}
	diffIDs := make([]digest.Digest, len(layers))
	for i, l := range layers {
		diffIDs[i] = digest.Digest(l.Annotations[blobs.LabelUncompressed])
	}
	cfgBytes, err := j.config.marshal(diffIDs, created)
	if err != nil {
		return PlatformResult{}, err
	}
	mts := mediaTypesFor(opts.Docker)
	cfgDesc := ocispec.Descriptor{MediaType: mts.config, Digest: digest.FromBytes(cfgBytes), Size: int64(len(cfgBytes))}
	if err := writeBlob(ctx, w.store, cfgDesc, cfgBytes, nil, opts.Progress, "config"); err != nil {
		return PlatformResult{}, err
	}
	sociIndex, ztocs, err := w.writeSociIndex(ctx, layers, opts)
	if err != nil {
		return PlatformResult{}, err
	}
	mfst, err := w.writeManifest(ctx, j, cfgDesc, layers, withSociIndex(ann, platforms.Format(j.platform), sociIndex), opts)
	if err != nil {
		return PlatformResult{}, err
	}
	ztocResults(results, ztocs)
	pr := PlatformResult{Platform: j.platform, Manifest: mfst, Config: cfgDesc, Layers: results, Repairs: norm.Repairs}
	pr.SociIndex = sociIndexEntry(sociIndex, pr)
	return pr, nil
}

// layerDescriptors returns the manifest's layers (internal annotations kept
// for the caller to strip) and the per-layer results, dropped ones included.
func (w *ImageWriter) layerDescriptors(ctx context.Context, pairs []blobs.DiffPair, norm normalized, opts Options) ([]ocispec.Descriptor, []LayerResult, error) {
	kept := map[int]bool{}
	for _, i := range norm.Keep {
		kept[i] = true
	}
	var layers []ocispec.Descriptor
	var results []LayerResult
	for i, p := range pairs {
		d := p.Blob
		mt, err := convertLayerMediaType(d.MediaType, opts.Docker)
		if err != nil {
			return nil, nil, err
		}
		d.MediaType = mt
		results = append(results, LayerResult{
			DiffID: p.DiffID, Digest: d.Digest, Size: d.Size, MediaType: mt,
			Compression: p.Compression, Status: p.Status, Dropped: !kept[i],
			EpochApplied: opts.RewriteTimestamp && !isStoredPair(p),
			RefID:        p.RefID,
		})
		if kept[i] {
			layers = append(layers, d)
		}
	}
	if norm.AddEmpty {
		d, err := writeEmptyLayer(ctx, w.store, opts.Docker)
		if err != nil {
			return nil, nil, err
		}
		layers = append(layers, d)
		results = append(results, LayerResult{
			DiffID: blobs.EmptyTarDiffID, Digest: d.Digest, Size: d.Size, MediaType: d.MediaType,
			Compression: blobs.GzipCompat, Status: blobs.StatusNew,
		})
	}
	return layers, results, nil
}

// isStoredPair reports whether p came from a stored base blob (RefID
// "blob:..." by the stored ref convention).
func isStoredPair(p blobs.DiffPair) bool {
	return len(p.RefID) > 5 && p.RefID[:5] == "blob:"
}

// writeManifest writes the manifest of one platform with GC labels.
func (w *ImageWriter) writeManifest(ctx context.Context, j *platformJob, cfg ocispec.Descriptor, layers []ocispec.Descriptor, ann Annotations, opts Options) (ocispec.Descriptor, error) {
	mts := mediaTypesFor(opts.Docker)
	clean := make([]ocispec.Descriptor, len(layers))
	for i, l := range layers {
		clean[i] = ocispec.Descriptor{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size, URLs: l.URLs}
		if !opts.Docker {
			clean[i].Annotations = publicAnnotations(l.Annotations)
		}
	}
	m := ocispec.Manifest{
		MediaType:   mts.manifest,
		Config:      cfg,
		Layers:      clean,
		Annotations: annotationsFor(ann.Manifest, platforms.Format(j.platform)),
	}
	m.SchemaVersion = 2
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("marshal manifest: %w", err)
	}
	labels := map[string]string{"containerd.io/gc.ref.content.0": cfg.Digest.String()}
	for i, l := range layers {
		labels[fmt.Sprintf("containerd.io/gc.ref.content.%d", i+1)] = l.Digest.String()
	}
	p := j.platform
	desc := ocispec.Descriptor{
		MediaType: mts.manifest, Digest: digest.FromBytes(b), Size: int64(len(b)),
		Platform: &p, Annotations: annotationsFor(ann.ManifestDescriptor, platforms.Format(j.platform)),
	}
	return desc, writeBlob(ctx, w.store, desc, b, labels, opts.Progress, "manifest")
}

// writeIndex writes the index (or Docker manifest list) over the manifests.
func (w *ImageWriter) writeIndex(ctx context.Context, prs []PlatformResult, ann Annotations, opts Options) (ocispec.Descriptor, error) {
	mts := mediaTypesFor(opts.Docker)
	idx := ocispec.Index{MediaType: mts.index, Annotations: copyMap(ann.Index)}
	idx.SchemaVersion = 2
	labels := map[string]string{}
	for i, pr := range prs {
		idx.Manifests = append(idx.Manifests, pr.Manifest)
		labels[fmt.Sprintf("containerd.io/gc.ref.content.m.%d", i)] = pr.Manifest.Digest.String()
	}
	idx.Manifests = append(idx.Manifests, sociIndexManifests(prs, len(prs), labels)...)
	b, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("marshal index: %w", err)
	}
	desc := ocispec.Descriptor{MediaType: mts.index, Digest: digest.FromBytes(b), Size: int64(len(b)), Annotations: copyMap(ann.IndexDescriptor)}
	return desc, writeBlob(ctx, w.store, desc, b, labels, opts.Progress, "index")
}

// writeBlob writes b under desc with labels, idempotently.
func writeBlob(ctx context.Context, store Store, desc ocispec.Descriptor, b []byte, labels map[string]string, pw progress.Writer, kind string) error {
	task := progress.Start(pw, kind+":"+desc.Digest.String(), "exporting "+kind+" "+desc.Digest.String(), int64(len(b)))
	err := content.WriteBlob(ctx, store, "lade-"+kind+"-"+desc.Digest.Encoded(), bytesReader(b), desc, content.WithLabels(labels))
	if err != nil {
		err = fmt.Errorf("write %s %s: %w", kind, desc.Digest, err)
	}
	task.Add(int64(len(b)))
	task.Done("", err)
	return err
}
