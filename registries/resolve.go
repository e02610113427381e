package registries

import (
	"errors"
	"fmt"
	"strings"

	"github.com/distribution/reference"
)

// ErrBlocked is wrapped by the error for a reference whose registry the
// configuration blocks.
var ErrBlocked = errors.New("registry is blocked in the registries configuration")

// Candidate is one fully qualified reference a name may stand for.
type Candidate struct {
	// Ref is the reference, with a tag (":latest" when none was given) or
	// a digest.
	Ref reference.Named
	// Origin says why it is a candidate: "fully qualified", "alias in
	// FILE", "unqualified-search-registries" or "Docker's normalization".
	Origin string
}

// Candidates returns what name may refer to, in the order to try them.
// A fully qualified name (its first component has a "." or ":" or is
// "localhost") is its only candidate. A short name is replaced by its
// alias, if any; otherwise it is tried in each unqualified-search
// registry. In enforcing mode (the default) more than one search
// registry makes the name ambiguous: lade cannot prompt, so the error
// lists the candidates and asks for a fully qualified name or an alias.
// Without any configuration file, Docker's normalization applies.
func (c *Config) Candidates(name string) ([]Candidate, error) {
	if name == "" {
		return nil, errors.New("empty image name")
	}
	if strings.Contains(name, "://") {
		return nil, fmt.Errorf("image name %q has a scheme: give host[:port]/path[:tag]", name)
	}
	if c == nil || len(c.Files) == 0 {
		named, err := reference.ParseNormalizedNamed(name)
		if err != nil {
			return nil, fmt.Errorf("parse image name %q: %w", name, err)
		}
		origin := "Docker's normalization"
		if isQualified(name) {
			origin = "fully qualified"
		}
		return []Candidate{{Ref: reference.TagNameOnly(named), Origin: origin}}, nil
	}
	if isQualified(name) {
		named, err := reference.ParseNormalizedNamed(name)
		if err != nil {
			return nil, fmt.Errorf("parse image name %q: %w", name, err)
		}
		return []Candidate{{Ref: reference.TagNameOnly(named), Origin: "fully qualified"}}, nil
	}
	repo, suffix := splitShort(name)
	if err := checkShort(repo, name); err != nil {
		return nil, err
	}
	if a, ok := c.Aliases[repo]; ok {
		ref, err := qualify(a.Value, suffix)
		if err != nil {
			return nil, fmt.Errorf("alias %q in %s: %w", repo, a.File, err)
		}
		return []Candidate{{Ref: ref, Origin: "alias in " + a.File}}, nil
	}
	if len(c.SearchRegistries) == 0 {
		return nil, fmt.Errorf("short name %q: %s set no unqualified-search-registries and no alias for it: use a fully qualified name (host/path:tag)", name, strings.Join(c.Files, ", "))
	}
	var out []Candidate
	for _, reg := range c.SearchRegistries {
		ref, err := qualify(reg+"/"+repo, suffix)
		if err != nil {
			return nil, fmt.Errorf("short name %q in search registry %q: %w", name, reg, err)
		}
		out = append(out, Candidate{Ref: ref, Origin: "unqualified-search-registries"})
	}
	if len(out) > 1 && (c.Mode == ModeEnforcing || c.Mode == "") {
		var names []string
		for _, o := range out {
			names = append(names, o.Ref.String())
		}
		return nil, fmt.Errorf("short name %q is ambiguous in short-name-mode enforcing: it may be %s; lade cannot prompt, so use a fully qualified name or add an alias under [aliases] in %s",
			name, strings.Join(names, ", "), c.Files[len(c.Files)-1])
	}
	return out, nil
}

// isQualified reports whether name's first component is a registry host.
func isQualified(name string) bool {
	first, _, ok := strings.Cut(name, "/")
	return ok && (strings.ContainsAny(first, ".:") || first == "localhost")
}

// splitShort splits a short name into its repository and its ":tag",
// "@digest" or ":tag@digest" suffix.
func splitShort(name string) (string, string) {
	repo, dig, _ := strings.Cut(name, "@")
	if dig != "" {
		dig = "@" + dig
	}
	if i := strings.LastIndex(repo, ":"); i >= 0 {
		return repo[:i], repo[i:] + dig
	}
	return repo, dig
}

// checkShort checks that a short name is a valid repository path.
func checkShort(repo, name string) error {
	if _, err := reference.ParseNamed("example.invalid/" + repo); err != nil {
		return fmt.Errorf("parse image name %q: %w", name, err)
	}
	return nil
}

// checkAlias checks one [aliases] entry: a short name (no tag or digest)
// mapping to a fully qualified name.
func checkAlias(short, long string) error {
	if isQualified(short) || strings.ContainsAny(short, ":@") {
		return fmt.Errorf("alias %q: the key must be a short name without tag or digest", short)
	}
	if err := checkShort(short, short); err != nil {
		return fmt.Errorf("alias %q: %w", short, err)
	}
	if !isQualified(long) {
		return fmt.Errorf("alias %q: value %q must be fully qualified (host/path)", short, long)
	}
	if _, err := reference.ParseNamed(long); err != nil {
		return fmt.Errorf("alias %q: value %q: %w", short, long, err)
	}
	return nil
}

// qualify parses a fully qualified name plus suffix, adding ":latest" when
// there is neither tag nor digest.
func qualify(long, suffix string) (reference.Named, error) {
	if suffix != "" {
		if named, err := reference.ParseNamed(long); err == nil {
			if _, tagged := named.(reference.Tagged); tagged && strings.HasPrefix(suffix, ":") {
				return nil, fmt.Errorf("%q already has a tag and %q gives another", long, suffix)
			}
		}
	}
	named, err := reference.ParseNormalizedNamed(long + suffix)
	if err != nil {
		return nil, err
	}
	return reference.TagNameOnly(named), nil
}
