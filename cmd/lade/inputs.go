package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/lade-build/lade/cache"
	"github.com/lade-build/lade/exporter"
	"github.com/lade-build/lade/imagestore"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/urfave/cli/v3"
)

// platformInput is what one platform is made of.
type platformInput struct {
	platform string
	layers   []string
	config   string
	base     string
}

// exportInputs reads the platforms from -f SPEC or from the arguments.
func exportInputs(c *cli.Command) ([]platformInput, error) {
	if f := c.String("file"); f != "" {
		if c.Args().Len() > 0 {
			return nil, errors.New("give layers either as arguments or in the spec (-f), not both")
		}
		if c.IsSet("platform") {
			return nil, errors.New("--platform conflicts with -f SPEC: the spec names each platform")
		}
		spec, err := loadSpec(f)
		if err != nil {
			return nil, err
		}
		var out []platformInput
		for _, p := range spec.Platforms {
			base := p.Base
			if base == "" {
				base = c.String("base")
			}
			cfg := p.Config
			if cfg == "" {
				cfg = c.String("config")
			}
			out = append(out, platformInput{platform: p.Platform, layers: p.Layers, config: cfg, base: base})
		}
		return out, nil
	}
	if c.Args().Len() == 0 && c.String("base") == "" {
		return nil, errors.New("nothing to export: give LAYER directories or tarballs, a --base, or -f SPEC")
	}
	return []platformInput{{platform: c.String("platform"), layers: c.Args().Slice(), config: c.String("config"), base: c.String("base")}}, nil
}

// buildSource turns the inputs into an exporter source: refs for the
// layers on top of the base's stored layers, and the config with one
// history entry per new layer. now is the export's creation time, shared
// by every platform and every output (see stampCreated).
func buildSource(ctx context.Context, s *imagestore.Store, inputs []platformInput, edits configEdits, now time.Time, reg registrySettings) (exporter.Source, error) {
	var src exporter.Source
	for _, in := range inputs {
		p, err := exporter.ParsePlatform(in.platform)
		if err != nil {
			return src, err
		}
		ps := exporter.PlatformSource{Platform: in.platform}
		var cfg []byte
		var history []ocispec.History
		if in.base != "" {
			b, err := loadBase(ctx, s, in.base, p, reg)
			if err != nil {
				return src, err
			}
			ps.Ref, cfg, ps.BaseHistory = b.Top, b.Config, b.History
		}
		if in.config != "" {
			if cfg, err = loadConfigFile(in.config); err != nil {
				return src, err
			}
			ps.BaseHistory = 0
		}
		ps.Ref, history, err = layerRefs(ps.Ref, in.layers, edits)
		if err != nil {
			return src, err
		}
		if cfg == nil {
			cfg = exporter.DefaultConfig(p)
		}
		if ps.Config, err = edits.apply(cfg); err != nil {
			return src, err
		}
		// A base's "created" is the base's: an image with new layers or
		// edits on top of it is created now.
		renewed := in.config == "" && in.base != "" && (len(in.layers) > 0 || edits.changes())
		if ps.Config, err = stampCreated(ps.Config, now, renewed); err != nil {
			return src, err
		}
		if ps.Config, err = appendHistory(ps.Config, history, len(cache.Chain(ps.Ref))); err != nil {
			return src, err
		}
		src.Platforms = append(src.Platforms, ps)
	}
	return src, nil
}

// layerRefs stacks the LAYER paths on parent: directories diff against the
// previous directory, files are layer tarballs.
func layerRefs(parent cache.Ref, paths []string, edits configEdits) (cache.Ref, []ocispec.History, error) {
	var lower *cache.DirRef
	var history []ocispec.History
	for _, path := range paths {
		fi, err := os.Stat(path)
		if err != nil {
			return nil, nil, fmt.Errorf("layer %s: %w", path, err)
		}
		desc := "lade export " + filepath.Base(filepath.Clean(path))
		switch {
		case fi.IsDir():
			d, err := cache.NewDirRef(path, parent, cache.DirOptions{Description: desc, Lower: lower})
			if err != nil {
				return nil, nil, err
			}
			parent, lower = d, d
		case fi.Mode().IsRegular():
			t, err := cache.NewTarballRef(path, parent, cache.TarballOptions{Description: desc})
			if err != nil {
				return nil, nil, err
			}
			parent = t
		default:
			return nil, nil, fmt.Errorf("layer %s is neither a directory nor a tar file", path)
		}
		history = append(history, edits.historyEntry(desc, parent.CreatedAt()))
	}
	return parent, history, nil
}

// appendHistory adds the entries of the new layers the config's history
// does not account for yet (a --config may already describe them), keeping
// the config's other fields.
func appendHistory(cfg []byte, entries []ocispec.History, layers int) ([]byte, error) {
	if len(entries) == 0 {
		return cfg, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(cfg, &m); err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	var h []ocispec.History
	if v, ok := m["history"]; ok {
		if err := json.Unmarshal(v, &h); err != nil {
			return nil, fmt.Errorf("image config history: %w", err)
		}
	}
	nonEmpty := 0
	for _, e := range h {
		if !e.EmptyLayer {
			nonEmpty++
		}
	}
	need := min(layers-nonEmpty, len(entries))
	if need <= 0 {
		return cfg, nil
	}
	b, err := json.Marshal(append(h, entries[len(entries)-need:]...))
	if err != nil {
		return nil, err
	}
	m["history"] = b
	return json.Marshal(m)
}

// stampCreated sets the config's "created" to now when it has none, or
// when replace is set. Without it the exporter would pick the time of each
// Commit, and the outputs of one export would be different images.
func stampCreated(cfg []byte, now time.Time, replace bool) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(cfg, &m); err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	if v, ok := m["created"]; ok && string(v) != "null" && !replace {
		return cfg, nil
	}
	b, err := json.Marshal(now.UTC())
	if err != nil {
		return nil, err
	}
	m["created"] = b
	return json.Marshal(m)
}
