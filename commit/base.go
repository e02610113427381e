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

// Base is a base image resolved for one platform.
type Base struct {
	// Manifest is the base manifest; zero without a base.
	Manifest ocispec.Descriptor
	// Config is the base config JSON; nil without a base.
	Config []byte
	// Top is the base's last layer as a stored ref; nil without layers.
	Top cache.Ref
	// Layers is the number of base layers.
	Layers int
	// History is the number of entries in the base config's history.
	History int
}

// LoadBase reads the base rooted at root (a manifest, or an index and
// platform want; nil: the host's) from p, every blob verified, and returns
// its layers as stored refs, reused as they are. A zero root is no base.
// It is the one base-image loader of commit, lade export and lade commit.
func LoadBase(ctx context.Context, p content.Provider, root ocispec.Descriptor, want *ocispec.Platform) (Base, error) {
	if root.Digest == "" {
		return Base{}, nil
	}
	mdesc, err := pickManifest(ctx, p, root, want)
	if err != nil {
		return Base{}, fmt.Errorf("base %s: %w", root.Digest, err)
	}
	mb, err := archive.ReadVerified(ctx, p, mdesc)
	if err != nil {
		return Base{}, fmt.Errorf("base manifest: %w", err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(mb, &m); err != nil {
		return Base{}, fmt.Errorf("base manifest %s: %w", mdesc.Digest, err)
	}
	cfg, err := archive.ReadVerified(ctx, p, m.Config)
	if err != nil {
		return Base{}, fmt.Errorf("base config: %w", err)
	}
	var img ocispec.Image
	if err := json.Unmarshal(cfg, &img); err != nil {
		return Base{}, fmt.Errorf("base config %s: %w", m.Config.Digest, err)
	}
	if len(img.RootFS.DiffIDs) != len(m.Layers) {
		return Base{}, fmt.Errorf("base config lists %d diff_ids for %d layers", len(img.RootFS.DiffIDs), len(m.Layers))
	}
	var descs []string
	for _, h := range img.History {
		if !h.EmptyLayer {
			descs = append(descs, h.CreatedBy)
		}
	}
	b := Base{Manifest: mdesc, Config: cfg, Layers: len(m.Layers), History: len(img.History)}
	for i, l := range m.Layers {
		opts := cache.StoredOptions{}
		if i < len(descs) {
			opts.Description = descs[i]
		}
		r, err := cache.NewStoredRef(p, cache.Blob{Descriptor: l, DiffID: img.RootFS.DiffIDs[i]}, b.Top, opts)
		if err != nil {
			return Base{}, fmt.Errorf("base layer %s: %w", l.Digest, err)
		}
		b.Top = r
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
func newConfig(b Base, changes []Change, entry ocispec.History) (newConfigResult, error) {
	raw := map[string]json.RawMessage{}
	if b.Config != nil {
		if err := json.Unmarshal(b.Config, &raw); err != nil || raw == nil {
			return newConfigResult{}, fmt.Errorf("base config is not a JSON object: %v", err)
		}
	}
	delete(raw, "container")
	delete(raw, "container_config")
	var img ocispec.Image
	_ = json.Unmarshal(b.Config, &img) // checked by LoadBase
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
func padHistory(h []ocispec.History, b Base) ([]ocispec.History, error) {
	nonEmpty := 0
	for _, e := range h {
		if !e.EmptyLayer {
			nonEmpty++
		}
	}
	if nonEmpty > b.Layers {
		return nil, fmt.Errorf("base config history lists %d non-empty entries for %d layers", nonEmpty, b.Layers)
	}
	out := append([]ocispec.History(nil), h...)
	chain := cache.Chain(b.Top)
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
