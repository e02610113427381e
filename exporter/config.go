package exporter

import (
	"encoding/json"
	"fmt"
	"regexp"
	"runtime"
	"time"

	"github.com/containerd/platforms"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// defaultPath is the PATH of the default config, as BuildKit's.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// platformPart is what an os, architecture or variant looks like.
var platformPart = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)

// ParsePlatform parses and normalizes a platform string; empty means the
// host platform.
func ParsePlatform(s string) (ocispec.Platform, error) {
	if s == "" {
		return platforms.Normalize(platforms.DefaultSpec()), nil
	}
	p, err := platforms.Parse(s)
	if err != nil {
		return ocispec.Platform{}, fmt.Errorf("invalid platform %q: use os/arch[/variant], e.g. linux/amd64 or linux/arm64: %w", s, err)
	}
	if p.OS == "" || p.Architecture == "" {
		return ocispec.Platform{}, fmt.Errorf("invalid platform %q: os and architecture are required", s)
	}
	p = platforms.Normalize(p)
	for _, part := range []string{p.OS, p.Architecture, p.Variant} {
		if part != "" && !platformPart.MatchString(part) {
			return ocispec.Platform{}, fmt.Errorf("invalid platform %q: %q is not an os, architecture or variant name", s, part)
		}
	}
	return p, nil
}

// DefaultConfig returns the config used when a platform has none: WorkingDir
// "/" and, except on Windows, BuildKit's default PATH.
func DefaultConfig(p ocispec.Platform) []byte {
	img := ocispec.Image{
		Platform: ocispec.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant},
		Config:   ocispec.ImageConfig{WorkingDir: "/"},
		RootFS:   ocispec.RootFS{Type: "layers"},
	}
	if p.OS != "windows" {
		img.Config.Env = []string{defaultPath}
	}
	b, _ := json.Marshal(img)
	return b
}

// imageConfig is a config JSON being patched: unknown fields are kept.
type imageConfig struct {
	raw     map[string]json.RawMessage
	History []ocispec.History
	Created *time.Time
}

// parseConfig decodes a config JSON, checking the fields lade patches.
func parseConfig(b []byte) (*imageConfig, error) {
	c := &imageConfig{}
	if err := json.Unmarshal(b, &c.raw); err != nil {
		return nil, fmt.Errorf("image config is not a JSON object: %w", err)
	}
	if c.raw == nil {
		// stock's words (BuildKit's TestValidateNullConfig looks for them)
		return nil, fmt.Errorf("invalid null image config for export: give a JSON object")
	}
	if v, ok := c.raw["history"]; ok {
		if err := json.Unmarshal(v, &c.History); err != nil {
			return nil, fmt.Errorf("image config history: %w", err)
		}
	}
	if v, ok := c.raw["created"]; ok && string(v) != "null" {
		var t time.Time
		if err := json.Unmarshal(v, &t); err != nil {
			return nil, fmt.Errorf("image config created: %w", err)
		}
		c.Created = &t
	}
	for _, k := range []string{"architecture", "os", "variant"} {
		if v, ok := c.raw[k]; ok {
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return nil, fmt.Errorf("image config %s must be a string: %w", k, err)
			}
		}
	}
	return c, nil
}

// setDefault sets key to v unless the config has it.
func (c *imageConfig) setDefault(key, v string) {
	if v == "" {
		return
	}
	if _, ok := c.raw[key]; !ok {
		c.raw[key], _ = json.Marshal(v)
	}
}

// marshal writes the config with rootfs, history and created patched.
func (c *imageConfig) marshal(diffIDs []digest.Digest, created time.Time) ([]byte, error) {
	if diffIDs == nil {
		diffIDs = []digest.Digest{}
	}
	set := func(k string, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("marshal %s: %w", k, err)
		}
		c.raw[k] = b
		return nil
	}
	if err := set("rootfs", ocispec.RootFS{Type: "layers", DiffIDs: diffIDs}); err != nil {
		return nil, err
	}
	if err := set("history", c.History); err != nil {
		return nil, err
	}
	if err := set("created", created.UTC()); err != nil {
		return nil, err
	}
	return json.Marshal(c.raw)
}

// imageCreated picks the image's created time: the config's, else the last
// history entry's, else now; clamped to the epoch when one is set.
func imageCreated(c *imageConfig, epoch *time.Time, now time.Time) time.Time {
	t := now
	switch {
	case c.Created != nil:
		t = *c.Created
	case epoch != nil:
		t = *epoch
	default:
		for i := len(c.History) - 1; i >= 0; i-- {
			if c.History[i].Created != nil {
				t = *c.History[i].Created
				break
			}
		}
	}
	if epoch != nil && t.After(*epoch) {
		t = *epoch
	}
	return t.UTC()
}

// hostPlatform is the platform of the machine lade runs on.
func hostPlatform() ocispec.Platform {
	return platforms.Normalize(ocispec.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH})
}
