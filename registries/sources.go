package registries

import (
	"fmt"
	"strings"

	"github.com/distribution/reference"
)

// Source is one place to pull from or push to.
type Source struct {
	// Ref is the reference at that place (location rewriting applied).
	Ref string
	// Insecure allows plain HTTP and unverified TLS for it.
	Insecure bool
	// Mirror tells a mirror from the primary location.
	Mirror bool
}

// Lookup returns the [[registry]] table whose prefix matches ref best (the
// longest prefix; a wildcard "*.domain" matches hosts under domain and
// loses to any exact prefix), or nil.
func (c *Config) Lookup(ref reference.Named) *Registry {
	if c == nil {
		return nil
	}
	name := ref.Name()
	host := reference.Domain(ref)
	var best *Registry
	bestLen := -1
	for i := range c.Registries {
		r := &c.Registries[i]
		n := 0
		switch {
		case strings.HasPrefix(r.Prefix, "*."):
			if !strings.HasSuffix(host, r.Prefix[1:]) {
				continue
			}
		case name == r.Prefix || strings.HasPrefix(name, r.Prefix+"/"):
			n = len(r.Prefix) + 1 // any exact prefix beats a wildcard
		default:
			continue
		}
		if n > bestLen {
			best, bestLen = r, n
		}
	}
	return best
}

// PullSources returns where to pull ref from, in order: the mirrors that
// apply to it, then the primary location. A blocked registry is an error
// wrapping ErrBlocked.
func (c *Config) PullSources(ref reference.Named) ([]Source, error) {
	r := c.Lookup(ref)
	if r == nil {
		return []Source{{Ref: ref.String()}}, nil
	}
	if r.Blocked {
		return nil, fmt.Errorf("%s: %w (prefix %q)", ref, ErrBlocked, r.Prefix)
	}
	_, byDigest := ref.(reference.Canonical)
	var out []Source
	for _, m := range r.Mirrors {
		mode := m.PullFromMirror
		if r.MirrorByDigestOnly && mode == "" {
			mode = "digest-only"
		}
		if (mode == "digest-only" && !byDigest) || (mode == "tag-only" && byDigest) {
			continue
		}
		out = append(out, Source{Ref: rewrite(ref, r.Prefix, m.Location), Insecure: m.Insecure, Mirror: true})
	}
	return append(out, Source{Ref: rewrite(ref, r.Prefix, r.Location), Insecure: r.Insecure}), nil
}

// PushTarget returns where to push ref: its primary location. A blocked
// registry is an error wrapping ErrBlocked.
func (c *Config) PushTarget(ref reference.Named) (Source, error) {
	r := c.Lookup(ref)
	if r == nil {
		return Source{Ref: ref.String()}, nil
	}
	if r.Blocked {
		return Source{}, fmt.Errorf("%s: %w (prefix %q)", ref, ErrBlocked, r.Prefix)
	}
	return Source{Ref: rewrite(ref, r.Prefix, r.Location), Insecure: r.Insecure}, nil
}

// rewrite replaces prefix by location at the start of ref (no change for
// an empty location or a wildcard prefix).
func rewrite(ref reference.Named, prefix, location string) string {
	s := ref.String()
	if location == "" || strings.HasPrefix(prefix, "*.") {
		return s
	}
	return location + strings.TrimPrefix(s, prefix)
}
