package buildkit

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"time"

	"github.com/containerd/platforms"
	"github.com/lade-build/lade/exporter"
	bkcache "github.com/moby/buildkit/cache"
	bkexporter "github.com/moby/buildkit/exporter"
	"github.com/moby/buildkit/exporter/attestation"
	"github.com/moby/buildkit/exporter/containerimage"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	bkepoch "github.com/moby/buildkit/exporter/util/epoch"
	"github.com/moby/buildkit/solver"
	"github.com/moby/buildkit/solver/result"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// plan is what one export turns into an image: BuildKit's source read into
// platforms, configs, attestations, annotations and the epoch.
type plan struct {
	platforms []*platformPlan
	// index is true when the output is an index even for one platform:
	// the frontend returned a platform map, or attestations are attached.
	index   bool
	oci     bool
	compat  int
	started time.Time
	// epoch is the build-wide SOURCE_DATE_EPOCH (the attribute, or the
	// frontend's source.date.epoch); nil when only platforms have one.
	epoch       *time.Time
	annotations exporter.Annotations
	// epochLayers are the blobs made with file times clamped to the epoch
	// (rewrite-timestamp); filled by exportEpochLayers.
	epochLayers map[digest.Digest]bool
}

// platformPlan is one platform of a plan.
type platformPlan struct {
	id       string
	platform ocispecs.Platform
	ref      bkcache.ImmutableRef
	config   []byte
	// baseHistory counts the leading history entries equal to the base
	// image's; baseDiffIDs are the base image's layers.
	baseHistory int
	baseDiffIDs []digest.Digest
	atts        []bkexporter.Attestation
	// epoch is the platform's SOURCE_DATE_EPOCH: the build-wide one, else
	// the frontend's source.date.epoch/<id>.
	epoch *time.Time
	// Filled by exportLayers.
	remote *solver.Remote
	metas  []layerMeta
	// layerDigests are the image's layer blobs, one per layer of ref's
	// chain (dropped ones included); filled by attach.
	layerDigests []digest.Digest
}

// newPlan reads BuildKit's source for this instance.
func (i *instance) newPlan(src *bkexporter.Source, compat int) (*plan, error) {
	if _, ok := src.Metadata[exptypes.ExporterPlatformsKey]; len(src.Refs) > 0 && !ok {
		return nil, fmt.Errorf("unable to export multiple refs: the frontend gave no platform mapping (%s)", exptypes.ExporterPlatformsKey)
	}
	ps, err := exptypes.ParsePlatforms(src.Metadata)
	if err != nil {
		return nil, err
	}
	p := &plan{index: len(src.Refs) > 0, compat: compat, started: time.Now()}
	for _, bp := range ps.Platforms {
		pp, err := i.platformPlan(src, bp)
		if err != nil {
			return nil, err
		}
		p.index = p.index || len(pp.atts) > 0
		p.platforms = append(p.platforms, pp)
	}
	if !p.index && len(p.platforms) > 1 {
		return nil, fmt.Errorf("cannot export %d platforms without a platform map from the frontend", len(p.platforms))
	}
	p.oci = i.s.ociTypesFor(i.defaultOCITypes(compat, src))
	if i.s.estargz && !p.oci {
		return nil, fmt.Errorf("compression=estargz needs OCI media types: this build defaults to Docker's, set oci-mediatypes=true")
	}
	if a := i.s.ociArtifact; a != nil && *a && !p.oci {
		// BuildKit's check once the media types default is known.
		return nil, fmt.Errorf("oci-artifact=true needs OCI media types: this build defaults to Docker's, set oci-mediatypes=true")
	}
	if !p.oci && len(src.Attestations) > 0 && p.index {
		return nil, fmt.Errorf("cannot export attestations with oci-mediatypes=false: Docker manifest lists cannot carry them")
	}
	if err := i.readEpochs(src, p); err != nil {
		return nil, err
	}
	if p.annotations, err = i.mergeAnnotations(src.Metadata); err != nil {
		return nil, err
	}
	return p, nil
}

// platformPlan reads one platform of the source.
func (i *instance) platformPlan(src *bkexporter.Source, bp exptypes.Platform) (*platformPlan, error) {
	pp := &platformPlan{id: bp.ID, platform: platforms.Normalize(bp.Platform)}
	if len(src.Refs) > 0 {
		r, ok := src.FindRef(bp.ID)
		if !ok {
			return nil, fmt.Errorf("failed to find ref for platform %s", bp.ID)
		}
		pp.ref = r
	} else {
		pp.ref = src.Ref
	}
	pp.config = exptypes.ParseKey(src.Metadata, exptypes.ExporterImageConfigKey, &bp)
	if base := exptypes.ParseKey(src.Metadata, exptypes.ExporterImageBaseConfigKey, &bp); len(base) > 0 {
		if err := pp.readBase(base); err != nil {
			return nil, err
		}
	}
	atts := src.Attestations[bp.ID]
	if !i.s.inlineAttestations {
		atts = attestation.Filter(atts, nil, map[string][]byte{
			result.AttestationInlineOnlyKey: []byte(strconv.FormatBool(true)),
		})
	}
	pp.atts = atts
	return pp, nil
}

// readBase records the base image's layers and how many leading history
// entries of the config are the base image's (kept as they are).
func (pp *platformPlan) readBase(base []byte) error {
	var img ocispecs.Image
	if err := json.Unmarshal(base, &img); err != nil {
		return fmt.Errorf("base image config: %w", err)
	}
	pp.baseDiffIDs = img.RootFS.DiffIDs
	if len(pp.config) == 0 {
		return nil
	}
	var cfg ocispecs.Image
	if err := json.Unmarshal(pp.config, &cfg); err != nil {
		return fmt.Errorf("image config: %w", err)
	}
	for n, h := range cfg.History {
		if n >= len(img.History) || !reflect.DeepEqual(h, img.History[n]) {
			break
		}
		pp.baseHistory = n + 1
	}
	return nil
}

// defaultOCITypes is BuildKit's default media type choice: OCI for type=oci,
// else OCI from compatibility version 30 or when attestations are attached.
func (i *instance) defaultOCITypes(compat int, src *bkexporter.Source) bool {
	if i.e.typ == "oci" {
		return true
	}
	return containerimage.DefaultOCITypes(compat, src)
}

// readEpochs sets SOURCE_DATE_EPOCH as BuildKit's image writer reads it:
// the attribute (which BuildKit also fills from the SOURCE_DATE_EPOCH
// build argument), else the frontend's build-wide source.date.epoch, for
// every platform; without either, each platform's own
// source.date.epoch/<id> (a multi-platform dockerui build). source-date-
// epoch="" means no epoch at all.
func (i *instance) readEpochs(src *bkexporter.Source, p *plan) error {
	p.epoch = i.s.out.Options.Epoch
	if p.epoch == nil && !i.s.epochReset {
		tm, err := bkepoch.ParseSource(src, nil)
		if err != nil {
			return err
		}
		p.epoch = tm
	}
	for _, pp := range p.platforms {
		pp.epoch = p.epoch
		if p.epoch != nil || i.s.epochReset {
			continue
		}
		tm, err := bkepoch.ParseSource(src, &exptypes.Platform{ID: pp.id, Platform: pp.platform})
		if err != nil {
			return err
		}
		pp.epoch = tm
	}
	return nil
}

// mergeAnnotations merges the frontend's annotations (metadata keys
// annotation.*) under the output's attributes, which win.
func (i *instance) mergeAnnotations(md map[string][]byte) (exporter.Annotations, error) {
	ag, _, err := containerimage.ParseAnnotations(md)
	if err != nil {
		return exporter.Annotations{}, err
	}
	var a exporter.Annotations
	for pk, g := range ag {
		a.Manifest = mergeLevel(a.Manifest, pk, g.Manifest)
		a.ManifestDescriptor = mergeLevel(a.ManifestDescriptor, pk, g.ManifestDescriptor)
		a.Index = mergeFlat(a.Index, g.Index)
		a.IndexDescriptor = mergeFlat(a.IndexDescriptor, g.IndexDescriptor)
	}
	own := i.s.out.Annotations
	for pk, kv := range own.Manifest {
		a.Manifest = mergeLevel(a.Manifest, pk, kv)
	}
	for pk, kv := range own.ManifestDescriptor {
		a.ManifestDescriptor = mergeLevel(a.ManifestDescriptor, pk, kv)
	}
	a.Index = mergeFlat(a.Index, own.Index)
	a.IndexDescriptor = mergeFlat(a.IndexDescriptor, own.IndexDescriptor)
	return a, nil
}

func mergeLevel(m map[string]map[string]string, pk string, kv map[string]string) map[string]map[string]string {
	if len(kv) == 0 {
		return m
	}
	if m == nil {
		m = map[string]map[string]string{}
	}
	m[pk] = mergeFlat(m[pk], kv)
	return m
}

func mergeFlat(m, kv map[string]string) map[string]string {
	if len(kv) == 0 {
		return m
	}
	if m == nil {
		m = map[string]string{}
	}
	for k, v := range kv {
		m[k] = v
	}
	return m
}

// synthesizedComment marks the history entries BuildKit makes for layers
// the config has none for.
const synthesizedComment = "buildkit.exporter.image.v0"

// fillHistoryCreated sets the missing created times of the config's
// history as BuildKit does: a layer's entry gets its ref's creation time,
// the other entries a neighbour's time; a config without created gets the
// last history time. Layers the history has no entry for get the entries
// BuildKit makes from the refs (at each ref's creation time) first.
// lade's ImageWriter would otherwise use the image's time for all of them.
func fillHistoryCreated(config []byte, metas []layerMeta) ([]byte, error) {
	if len(config) == 0 {
		return config, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(config, &m); err != nil || m == nil {
		return config, nil // lade's ImageWriter reports a bad config
	}
	var h []ocispecs.History
	if m["history"] != nil {
		if err := json.Unmarshal(m["history"], &h); err != nil {
			return config, nil
		}
	}
	h, changed := addMissingEntries(h, metas)
	changed = fillLayerTimes(h, metas) || changed
	changed = fillGaps(h) || changed
	if _, ok := m["created"]; !ok {
		// BuildKit's image time: the last history time (lade clamps it to
		// the epoch, as BuildKit does).
		for n := len(h) - 1; n >= 0; n-- {
			if h[n].Created != nil {
				b, err := json.Marshal(h[n].Created.UTC())
				if err != nil {
					return nil, err
				}
				m["created"], changed = b, true
				break
			}
		}
	}
	if !changed {
		return config, nil
	}
	b, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	m["history"] = b
	return json.Marshal(m)
}

// addMissingEntries appends BuildKit's entries for the layers the history
// has none for (the top ones), as BuildKit does before it picks times.
func addMissingEntries(h []ocispecs.History, metas []layerMeta) ([]ocispecs.History, bool) {
	layers := 0
	for _, e := range h {
		if !e.EmptyLayer {
			layers++
		}
	}
	if layers >= len(metas) {
		return h, false
	}
	for _, l := range metas[layers:] {
		h = append(h, ocispecs.History{CreatedBy: l.description, Comment: synthesizedComment})
	}
	return h, true
}

// fillLayerTimes gives each layer's entry without a time its ref's creation
// time.
func fillLayerTimes(h []ocispecs.History, metas []layerMeta) bool {
	layer, changed := 0, false
	for n := range h {
		if h[n].EmptyLayer {
			continue
		}
		if h[n].Created == nil && layer < len(metas) && !metas[layer].createdAt.IsZero() {
			t := metas[layer].createdAt.UTC()
			h[n].Created, changed = &t, true
		}
		layer++
	}
	return changed
}

// fillGaps gives the entries without a time BuildKit's choice: the first
// gap takes the first time that follows a gap, later gaps the latest time
// seen since.
func fillGaps(h []ocispecs.History) bool {
	var fill *time.Time
	gap := false
	for n := range h {
		if h[n].Created != nil {
			fill = h[n].Created
			if gap {
				break
			}
		} else {
			gap = true
		}
	}
	gap, changed := false, false
	for n := range h {
		if h[n].Created != nil {
			if gap {
				fill = h[n].Created
			}
			continue
		}
		gap = true
		if fill != nil {
			h[n].Created, changed = fill, true
		}
	}
	return changed
}
