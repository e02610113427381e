package buildkit

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/containerd/platforms"
	"github.com/lade-build/lade/blobs"
	"github.com/lade-build/lade/exporter"
	"github.com/lade-build/lade/progress"
	"github.com/lade-build/lade/soci"
	bkexporter "github.com/moby/buildkit/exporter"
	"github.com/moby/buildkit/exporter/containerimage"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	"github.com/moby/buildkit/solver/llbsolver/compat"
	"github.com/moby/buildkit/util/leaseutil"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// ResponseKeyExport is the response metadata key under which lade reports
// what it did: per platform, the manifest, config and every layer (diffID,
// blob, compression, new or reused, dropped when empty) and the history
// repairs. The value is base64 JSON, which buildctl --metadata-file decodes.
const ResponseKeyExport = "lade.export"

// Export implements BuildKit's ExporterInstance: it writes the image of src
// with lade into the worker's content store under a lease, then names,
// pushes (in the finalize callback) or streams it to the client.
func (i *instance) Export(ctx context.Context, src *bkexporter.Source, bi bkexporter.ExportBuildInfo) (_ map[string]string, _ bkexporter.FinalizeFunc, descref bkexporter.DescriptorReference, err error) {
	src = src.Clone()
	if src.Metadata == nil {
		src.Metadata = map[string][]byte{}
	}
	for k, v := range i.s.meta {
		src.Metadata[k] = []byte(v)
	}
	announce(ctx)
	warn(ctx, i.s.warnings)
	p, err := i.newPlan(src, bi.CompatibilityVersion)
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, done, err := leaseutil.WithLease(ctx, i.e.opt.LeaseManager, leaseutil.MakeTemporary)
	if err != nil {
		return nil, nil, nil, err
	}
	defer func() {
		if descref == nil {
			_ = done(context.WithoutCancel(ctx))
		}
	}()
	tr := &tracker{soci: sociSpan(i.s.out.Options)}
	ctx = withTracker(ctx, tr)
	st, err := i.openTarStream(ctx, p, src, bi.SessionID)
	if err != nil {
		return nil, nil, nil, err
	}
	if st != nil {
		tr.setSink(st.add)
		defer func() {
			if err != nil {
				st.abort(err)
			}
		}()
	}
	if err := i.exportLayers(ctx, p, bi.SessionID); err != nil {
		return nil, nil, nil, err
	}
	res, err := i.commit(ctx, p, bi)
	if err != nil {
		return nil, nil, nil, err
	}
	reportLayers(ctx, tr, res)
	names := i.names(src)
	desc, err := i.attach(ctx, p, res, bi.SessionID, names)
	if err != nil {
		return nil, nil, nil, err
	}
	if !i.isImage() {
		desc = withCreated(desc, p)
	}
	desc = withPlatform(desc, p, res)
	resp, err := i.response(p, res, desc, tr)
	if err != nil {
		return nil, nil, nil, err
	}
	descref = containerimage.NewDescriptorReference(desc, done)
	fin, err := i.deliver(ctx, p, desc, names, resp, bi.SessionID, st)
	if err != nil {
		descref = nil
		return nil, nil, nil, err
	}
	return resp, fin, descref, nil
}

// commit adds the inline cache and runs lade's ImageWriter over the
// platforms' stored blobs (with rewrite-timestamp, exportEpochLayers
// already clamped the new layers' file times).
func (i *instance) commit(ctx context.Context, p *plan, bi bkexporter.ExportBuildInfo) (exporter.Result, error) {
	opts := i.s.out.Options
	caches, err := inlineCacheEntries(ctx, bi.InlineCache, p)
	if err != nil {
		return exporter.Result{}, err
	}
	src := exporter.Source{Annotations: p.annotations}
	maps := make([]layerMap, len(p.platforms))
	for n, pp := range p.platforms {
		top, empty, err := ladeChain(pp)
		if err != nil {
			return exporter.Result{}, err
		}
		maps[n] = newLayerMap(empty, opts.KeepEmptyLayers)
		cfg := pp.config
		if len(cfg) == 0 {
			// BuildKit's default config, with the history it makes.
			cfg = exporter.DefaultConfig(pp.platform)
		}
		cfg, err = fillHistoryCreated(cfg, pp.metas)
		if err != nil {
			return exporter.Result{}, err
		}
		if data, ok := caches[pp.id]; ok && len(cfg) > 0 {
			records, err := remapInlineCache(data, maps[n])
			if err != nil {
				return exporter.Result{}, err
			}
			if cfg, err = withInlineCache(cfg, records); err != nil {
				return exporter.Result{}, err
			}
		}
		src.Platforms = append(src.Platforms, exporter.PlatformSource{
			Platform: platforms.Format(pp.platform), Ref: top, Config: cfg, BaseHistory: pp.baseHistory, BaseLayers: baseLayers(pp),
			Epoch: pp.epoch,
		})
	}
	pw, closePW := newBridge(ctx)
	defer closePW()
	res, err := i.e.opt.Writer.Commit(ctx, src, i.ladeOptions(p, pw))
	if err != nil {
		return exporter.Result{}, err
	}
	if len(caches) > 0 {
		if err := checkLayerMaps(res, maps); err != nil {
			return exporter.Result{}, err
		}
	}
	return res, nil
}

// sociSpan is the zTOC span size of an export with soci=true, else 0.
func sociSpan(o exporter.Options) int64 {
	switch {
	case !o.Soci:
		return 0
	case o.SociSpanSize > 0:
		return o.SociSpanSize
	}
	return soci.DefaultSpanSize
}

// ladeOptions are the ImageWriter options of the export. Compression,
// forcing and timestamp rewriting already happened (in BuildKit's pipeline,
// or lade's for rewrite-timestamp); lade reuses the stored blobs as they are.
func (i *instance) ladeOptions(p *plan, pw progress.Writer) exporter.Options {
	o := i.s.out.Options
	o.Docker = !p.oci
	o.Epoch = p.epoch
	o.ForceCompression = false
	o.RewriteTimestamp = false
	o.Index = o.Index || p.index
	if _, set := i.attrs["repair-history"]; !set {
		// BuildKit marks surplus history entries empty with a warning; lade
		// does the same here and reports each repair.
		o.RepairHistory = true
	}
	o.Progress = pw
	return o
}

// checkLayerMaps verifies that lade dropped exactly the layers the inline
// cache was remapped for.
func checkLayerMaps(res exporter.Result, maps []layerMap) error {
	for n, pr := range res.Platforms {
		for j, l := range pr.Layers {
			if j < len(maps[n].kept) && l.Dropped == maps[n].kept[j] {
				return fmt.Errorf("inline cache: layer %d of platform %s: dropped=%v, expected %v", j, platforms.Format(pr.Platform), l.Dropped, !maps[n].kept[j])
			}
		}
	}
	return nil
}

// attach writes the attestation manifests of the platforms that have
// attestations and appends them to the index.
func (i *instance) attach(ctx context.Context, p *plan, res exporter.Result, sid string, names []string) (ocispecs.Descriptor, error) {
	root := res.Descriptor
	artifact := p.oci && p.compat >= compat.CompatibilityVersion031
	if i.s.ociArtifact != nil {
		artifact = *i.s.ociArtifact && p.oci
	}
	var extra []ocispecs.Descriptor
	for n, pp := range p.platforms {
		if len(pp.atts) == 0 {
			continue
		}
		for _, l := range res.Platforms[n].Layers {
			pp.layerDigests = append(pp.layerDigests, l.Digest)
		}
		d, err := i.attestationManifest(ctx, sid, pp, res.Platforms[n].Manifest, names, p, artifact)
		if err != nil {
			return ocispecs.Descriptor{}, fmt.Errorf("attestations of %s: %w", platforms.Format(pp.platform), err)
		}
		extra = append(extra, d)
	}
	return i.extendIndex(ctx, root, extra)
}

// response builds BuildKit's response metadata and lade's report.
func (i *instance) response(p *plan, res exporter.Result, desc ocispecs.Descriptor, tr *tracker) (map[string]string, error) {
	resp := map[string]string{exptypes.ExporterImageDigestKey: desc.Digest.String()}
	if !p.index && len(res.Platforms) == 1 {
		resp[exptypes.ExporterImageConfigDigestKey] = res.Platforms[0].Config.Digest.String()
	}
	dt, err := json.Marshal(desc)
	if err != nil {
		return nil, err
	}
	resp[exptypes.ExporterImageDescriptorKey] = base64.StdEncoding.EncodeToString(dt)
	for n := range res.Platforms {
		for j, l := range res.Platforms[n].Layers {
			if _, ok := tr.freshBlob(l.Digest); ok {
				res.Platforms[n].Layers[j].Status = blobs.StatusNew
			}
		}
	}
	markEpochLayers(p, res)
	report, err := json.Marshal(map[string]any{"platforms": res.Platforms, "created": res.Created})
	if err != nil {
		return nil, err
	}
	resp[ResponseKeyExport] = base64.StdEncoding.EncodeToString(report)
	return resp, nil
}

// names returns the image names of the output: name=* takes the
// frontend's image.name.
func (i *instance) names(src *bkexporter.Source) []string {
	name := i.s.name
	if v, ok := src.Metadata[exptypes.ExporterImageNameKey]; name == nameFromFrontend && ok {
		name = string(v)
	}
	var out []string
	for _, n := range strings.Split(name, ",") {
		if n = strings.TrimSpace(n); n != "" && n != nameFromFrontend {
			out = append(out, n)
		}
	}
	return out
}
