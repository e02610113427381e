package commit

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/platforms"
	"github.com/lade-build/lade/cache"
	"github.com/lade-build/lade/exporter"
	"github.com/lade-build/lade/exporter/archive"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// base is the base image of a commit, resolved for one platform.
type base struct {
	// manifest is the base manifest; zero without a base.
	manifest ocispec.Descriptor
	// config is the base config JSON; nil without a base.
	config []byte
	// top is the base's last layer as a stored ref; nil without layers.
	top cache.Ref
	// layers is the number of base layers.
	layers int
}

// loadBase reads the base rooted at root for platform want (nil: the
// host's) and returns its layers as stored refs, reused as they are.
func loadBase(ctx context.Context, p content.Provider, root ocispec.Descriptor, want *ocispec.Platform) (base, error) {
	if root.Digest == "" {
		return base{}, nil
	}
	mdesc, err := pickManifest(ctx, p, root, want)
	if err != nil {
		return base{}, fmt.Errorf("base %s: %w", root.Digest, err)
	}
	mb, err := archive.ReadVerified(ctx, p, mdesc)
	if err != nil {
		return base{}, fmt.Errorf("base manifest: %w", err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(mb, &m); err != nil {
		return base{}, fmt.Errorf("base manifest %s: %w", mdesc.Digest, err)
	}
	cfg, err := archive.ReadVerified(ctx, p, m.Config)
	if err != nil {
		return base{}, fmt.Errorf("base config: %w", err)
	}
	var img ocispec.Image
	if err := json.Unmarshal(cfg, &img); err != nil {
		return base{}, fmt.Errorf("base config %s: %w", m.Config.Digest, err)
	}
	if len(img.RootFS.DiffIDs) != len(m.Layers) {
		return base{}, fmt.Errorf("base config lists %d diff_ids for %d layers", len(img.RootFS.DiffIDs), len(m.Layers))
	}
	var descs []string
	for _, h := range img.History {
		if !h.EmptyLayer {
			descs = append(descs, h.CreatedBy)
		}
	}
	b := base{manifest: mdesc, config: cfg, layers: len(m.Layers)}
	for i, l := range m.Layers {
		opts := cache.StoredOptions{}
		if i < len(descs) {
			opts.Description = descs[i]
		}
		r, err := cache.NewStoredRef(p, cache.Blob{Descriptor: l, DiffID: img.RootFS.DiffIDs[i]}, b.top, opts)
		if err != nil {
			return base{}, fmt.Errorf("base layer %s: %w", l.Digest, err)
		}
		b.top = r
	}
	return b, nil
}

// pickManifest returns root when it is a manifest, else the manifest of
// the index for want.
func pickManifest(ctx context.Context, p content.Provider, root ocispec.Descriptor, want *ocispec.Platform) (ocispec.Descriptor, error) {
	if archive.IsManifest(root.MediaType) {
		return root, nil
	}
	if !archive.IsIndex(root.MediaType) {
		return ocispec.Descriptor{}, fmt.Errorf("unsupported media type %s", root.MediaType)
	}
	g, err := archive.Walk(ctx, p, root)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	plat := platforms.DefaultSpec()
	if want != nil {
		plat = *want
	}
	match := platforms.Only(plat)
	for _, img := range g.Images {
		if d := img.Manifest; d.Platform != nil && match.Match(*d.Platform) {
			return d, nil
		}
	}
	return ocispec.Descriptor{}, fmt.Errorf("no manifest for platform %s", platforms.Format(plat))
}

// newConfigResult is the config of the new image.
type newConfigResult struct {
	json        []byte
	platform    string
	baseHistory int
	warnings    []string
}

// newConfig builds the new image's config from the base's: changes
// applied, author set, created set, the base-build fields of a classic
// Docker config dropped, and the base history (padded with an entry per
// base layer it does not account for) followed by entry.
func newConfig(b base, changes []Change, entry ocispec.History) (newConfigResult, error) {
	raw := map[string]json.RawMessage{}
	if b.config != nil {
		if err := json.Unmarshal(b.config, &raw); err != nil || raw == nil {
			return newConfigResult{}, fmt.Errorf("base config is not a JSON object: %v", err)
		}
	}
	delete(raw, "container")
	delete(raw, "container_config")
	var img ocispec.Image
	_ = json.Unmarshal(b.config, &img) // checked by loadBase
	history, err := padHistory(img.History, b)
	if err != nil {
		return newConfigResult{}, err
	}
	res := newConfigResult{baseHistory: len(history)}
	if entry.Author != "" {
		changes = append(changes[:len(changes):len(changes)], Literal("MAINTAINER", entry.Author))
	} else {
		entry.Author = img.Author
	}
	f := &jsonFields{raw: raw}
	f.set("history", append(history, entry))
	f.set("created", entry.Created)
	p := img.Platform
	if p.Architecture == "" {
		p.Architecture = runtime.GOARCH
		res.warnings = append(res.warnings, fmt.Sprintf("the base config names no architecture: assuming %s", p.Architecture))
	}
	if p.OS == "" {
		p.OS = runtime.GOOS
		res.warnings = append(res.warnings, fmt.Sprintf("the base config names no os: assuming %s", p.OS))
	}
	f.set("architecture", p.Architecture)
	f.set("os", p.OS)
	if f.err != nil {
		return newConfigResult{}, f.err
	}
	res.platform = platforms.Format(ocispec.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant})
	if res.json, err = json.Marshal(raw); err != nil {
		return newConfigResult{}, err
	}
	if res.json, err = ApplyChanges(res.json, changes); err != nil {
		return newConfigResult{}, err
	}
	return res, nil
}

// padHistory returns the base history with an entry added for each base
// layer it lists no non-empty entry for, so the new entry goes with the new
// layer. More non-empty entries than layers is an error.
func padHistory(h []ocispec.History, b base) ([]ocispec.History, error) {
	nonEmpty := 0
	for _, e := range h {
		if !e.EmptyLayer {
			nonEmpty++
		}
	}
	if nonEmpty > b.layers {
		return nil, fmt.Errorf("base config history lists %d non-empty entries for %d layers", nonEmpty, b.layers)
	}
	out := append([]ocispec.History(nil), h...)
	chain := cache.Chain(b.top)
	for _, r := range chain[nonEmpty:] {
		blob, _ := r.Layer().Stored()
		out = append(out, ocispec.History{CreatedBy: "base layer " + blob.Descriptor.Digest.String(), Comment: exporter.SynthesizedComment})
	}
	return out, nil
}

// jsonFields sets fields of a config object, remembering the first
// encoding error.
type jsonFields struct {
	raw map[string]json.RawMessage
	err error
}

func (f *jsonFields) set(k string, v any) {
	b, err := json.Marshal(v)
	if err != nil && f.err == nil {
		f.err = fmt.Errorf("encode config %s: %w", k, err)
	}
	f.raw[k] = b
}
