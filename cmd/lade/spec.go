package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Spec is a multi-platform export description (lade export -f SPEC), in
// YAML or JSON:
//
//	platforms:
//	  - platform: linux/amd64
//	    layers: [base, app]          # paths relative to SPEC, bottom first
//	    config: config-amd64.json    # optional OCI image config
//	  - platform: linux/arm64
//	    layers: [base-arm64, app]
//	    base: oci:layout:1           # optional base image (oci: paths relative too)
type Spec struct {
	Platforms []SpecPlatform `yaml:"platforms"`
}

// SpecPlatform is one platform of a Spec.
type SpecPlatform struct {
	Platform string   `yaml:"platform"`
	Layers   []string `yaml:"layers"`
	Config   string   `yaml:"config"`
	Base     string   `yaml:"base"`
}

// specFields rewrites the YAML decoder's Go type names into the fields a
// spec may hold.
var specFields = strings.NewReplacer(
	" in type main.SpecPlatform", " (a platform has: platform, layers, config, base)",
	" in type main.Spec", " (a spec has: platforms)",
)

// loadSpec reads a spec file strictly (unknown fields are errors) and makes
// its paths absolute, relative to the spec's directory.
func loadSpec(path string) (*Spec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read spec: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var s Spec
	if err := dec.Decode(&s); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) { // name the fields, not Go types
			msg := specFields.Replace(strings.Join(te.Errors, "; "))
			return nil, fmt.Errorf("spec %s: %s", path, msg)
		}
		return nil, fmt.Errorf("spec %s: %w", path, err)
	}
	if len(s.Platforms) == 0 {
		return nil, fmt.Errorf("spec %s: no platforms: list them under \"platforms:\"", path)
	}
	dir := filepath.Dir(path)
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	for i := range s.Platforms {
		p := &s.Platforms[i]
		if p.Platform == "" {
			return nil, fmt.Errorf("spec %s: platform %d has no \"platform:\" (e.g. linux/amd64)", path, i+1)
		}
		if len(p.Layers) == 0 && p.Base == "" {
			return nil, errors.New("spec " + path + ": platform " + p.Platform + " has neither layers nor a base")
		}
		for j := range p.Layers {
			p.Layers[j] = abs(p.Layers[j])
		}
		p.Config = abs(p.Config)
		p.Base = specBase(p.Base, abs)
	}
	return &s, nil
}

// specBase makes the path of a file or directory base (oci:, oci-archive:,
// docker-archive:) relative to the spec, like the layers; store names and
// docker:// references are left alone.
func specBase(ref string, abs func(string) string) string {
	scheme, rest, ok := strings.Cut(ref, ":")
	switch {
	case !ok, rest == "":
		return ref
	case scheme == "oci", scheme == "oci-archive", scheme == "docker-archive":
		return scheme + ":" + abs(rest)
	}
	return ref
}
