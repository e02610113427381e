// Package registries reads containers-registries.conf(5), the file podman,
// buildah and skopeo share, and answers the two questions a client asks it:
// which fully qualified references a short name such as "debian" may mean
// (aliases, unqualified-search-registries, short-name-mode), and where a
// fully qualified reference is pulled from or pushed to (the [[registry]]
// table: location rewriting, mirrors, insecure, blocked).
//
// It is a small strict parser of the part of the format lade uses; every
// documented key is accepted (the ones lade does not act on, such as
// credential-helpers, are read and ignored) and an unknown key is an error
// naming the file. Only the version 2 format is read. Nothing here touches
// the network. When no configuration file exists, short names are
// normalized as Docker does (docker.io/library/NAME:latest).
package registries

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// EnvConf names the environment variable that, as for podman, replaces the
// default configuration file.
const EnvConf = "CONTAINERS_REGISTRIES_CONF"

// SystemConf is the system-wide configuration file.
const SystemConf = "/etc/containers/registries.conf"

// Mode is a short-name-mode value.
type Mode string

// The short-name modes of containers-registries.conf(5). lade never
// prompts, so enforcing with more than one candidate is an error.
const (
	// ModeEnforcing uses an alias or a single search registry; several
	// candidates make the name ambiguous.
	ModeEnforcing Mode = "enforcing"
	// ModePermissive tries every search registry in order.
	ModePermissive Mode = "permissive"
	// ModeDisabled tries every search registry in order, as before
	// short-name modes existed.
	ModeDisabled Mode = "disabled"
)

// Endpoint is one place a registry's images are served from.
type Endpoint struct {
	// Location is "host[:port][/path]".
	Location string
	// Insecure allows plain HTTP and unverified TLS for this endpoint.
	Insecure bool
	// PullFromMirror is "", "all", "digest-only" or "tag-only" (mirrors only).
	PullFromMirror string
}

// Registry is one [[registry]] table.
type Registry struct {
	// Prefix is what references are matched against: "host[/path]" or
	// "*.domain"; it defaults to Location.
	Prefix string
	// Endpoint is the primary location (Location rewrites Prefix).
	Endpoint
	// Blocked refuses every pull from and push to the registry.
	Blocked bool
	// MirrorByDigestOnly uses mirrors only for references by digest.
	MirrorByDigestOnly bool
	// Mirrors are tried in order before the primary location on pulls.
	Mirrors []Endpoint
}

// Config is the merged configuration of every file read.
type Config struct {
	// Files lists the files read, in order; empty means none exists and
	// Docker's normalization applies to short names.
	Files []string
	// SearchRegistries is unqualified-search-registries.
	SearchRegistries []string
	// Mode is short-name-mode; empty means enforcing.
	Mode Mode
	// Aliases maps a short name (without tag) to a fully qualified name,
	// with the file that set it.
	Aliases map[string]Alias
	// Registries are the [[registry]] tables, later files replacing
	// tables with the same prefix.
	Registries []Registry
}

// Alias is one [aliases] entry and where it came from.
type Alias struct {
	// Value is the fully qualified name the alias stands for.
	Value string
	// File is the configuration file that set it.
	File string
}

// file is one configuration file as written.
type file struct {
	Search            *[]string         `toml:"unqualified-search-registries"`
	ShortNameMode     *string           `toml:"short-name-mode"`
	CredentialHelpers []string          `toml:"credential-helpers"`
	Aliases           map[string]string `toml:"aliases"`
	Registries        []fileRegistry    `toml:"registry"`
	// AdditionalLayerStoreAuthHelper is read and ignored.
	AdditionalLayerStoreAuthHelper string `toml:"additional-layer-store-auth-helper"`
	// Registries (v1 format) are detected to explain the error.
	V1 map[string]any `toml:"registries"`
}

// fileRegistry is one [[registry]] table as written.
type fileRegistry struct {
	Prefix             string       `toml:"prefix"`
	Location           string       `toml:"location"`
	Insecure           bool         `toml:"insecure"`
	Blocked            bool         `toml:"blocked"`
	MirrorByDigestOnly bool         `toml:"mirror-by-digest-only"`
	Mirrors            []fileMirror `toml:"mirror"`
}

// fileMirror is one [[registry.mirror]] table as written.
type fileMirror struct {
	Location       string `toml:"location"`
	Insecure       bool   `toml:"insecure"`
	PullFromMirror string `toml:"pull-from-mirror"`
}

// Paths returns the files Load reads when asked for the defaults, as
// podman does: $CONTAINERS_REGISTRIES_CONF alone when set; otherwise
// $HOME/.config/containers/registries.conf if it exists, else
// /etc/containers/registries.conf, each followed by the *.conf files of
// its registries.conf.d directory (the user file's, or the system's and
// the user's) in lexical order.
func Paths() ([]string, []string) {
	if p := os.Getenv(EnvConf); p != "" {
		return []string{p}, nil
	}
	home, _ := os.UserHomeDir()
	user := filepath.Join(home, ".config", "containers", "registries.conf")
	if home != "" {
		if _, err := os.Stat(user); err == nil {
			return []string{user}, []string{user + ".d"}
		}
	}
	dirs := []string{SystemConf + ".d"}
	if home != "" {
		dirs = append(dirs, user+".d")
	}
	return []string{SystemConf}, dirs
}

// Load reads the configuration: path alone when it is not empty (a
// missing file is then an error), else the default files of Paths (any of
// which may be missing).
func Load(path string) (*Config, error) {
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read registries configuration: %w", err)
		}
		c := &Config{}
		return c, c.merge(path, b)
	}
	files, dirs := Paths()
	for _, d := range dirs {
		entries, err := os.ReadDir(d)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("read registries configuration directory: %w", err)
		}
		var names []string
		for _, e := range entries {
			if !e.IsDir() && strings.HasSuffix(e.Name(), ".conf") {
				names = append(names, filepath.Join(d, e.Name()))
			}
		}
		sort.Strings(names)
		files = append(files, names...)
	}
	c := &Config{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read registries configuration: %w", err)
		}
		if err := c.merge(f, b); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Parse reads one configuration file's content; name is used in errors.
func Parse(name string, data []byte) (*Config, error) {
	c := &Config{}
	return c, c.merge(name, data)
}

// merge adds one file to c as podman merges drop-ins: a later file's
// search list and mode replace earlier ones, aliases and registries
// (by prefix) are replaced one by one.
func (c *Config) merge(name string, data []byte) error {
	var f file
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		var strict *toml.StrictMissingError
		if errors.As(err, &strict) {
			return fmt.Errorf("registries configuration %s: unknown key: %s", name, strings.TrimSpace(strict.String()))
		}
		return fmt.Errorf("registries configuration %s: %w", name, err)
	}
	if f.V1 != nil {
		return fmt.Errorf("registries configuration %s: the version 1 format ([registries.search]) is not supported: use unqualified-search-registries and [[registry]] tables (containers-registries.conf(5))", name)
	}
	c.Files = append(c.Files, name)
	if f.Search != nil {
		c.SearchRegistries = *f.Search
	}
	if f.ShortNameMode != nil {
		switch m := Mode(*f.ShortNameMode); m {
		case ModeEnforcing, ModePermissive, ModeDisabled, "":
			c.Mode = m
		default:
			return fmt.Errorf("registries configuration %s: short-name-mode %q is not one of enforcing, permissive, disabled", name, m)
		}
	}
	for k, v := range f.Aliases {
		if err := checkAlias(k, v); err != nil {
			return fmt.Errorf("registries configuration %s: %w", name, err)
		}
		if c.Aliases == nil {
			c.Aliases = map[string]Alias{}
		}
		c.Aliases[k] = Alias{Value: v, File: name}
	}
	for _, fr := range f.Registries {
		r, err := fr.registry()
		if err != nil {
			return fmt.Errorf("registries configuration %s: %w", name, err)
		}
		c.Registries = slices.DeleteFunc(c.Registries, func(o Registry) bool { return o.Prefix == r.Prefix })
		c.Registries = append(c.Registries, r)
	}
	return nil
}

// registry checks one table and fills in its defaults.
func (fr fileRegistry) registry() (Registry, error) {
	r := Registry{Prefix: fr.Prefix, Endpoint: Endpoint{Location: strings.TrimSuffix(fr.Location, "/"), Insecure: fr.Insecure},
		Blocked: fr.Blocked, MirrorByDigestOnly: fr.MirrorByDigestOnly}
	if r.Prefix == "" {
		r.Prefix = r.Location
	}
	if r.Prefix == "" {
		return r, errors.New("a [[registry]] table needs a prefix or a location")
	}
	if strings.Contains(r.Prefix, "://") || strings.Contains(r.Location, "://") {
		return r, fmt.Errorf("registry %q: prefix and location take no scheme (host[:port][/path])", r.Prefix)
	}
	if strings.HasPrefix(r.Prefix, "*.") && r.Location != "" {
		return r, fmt.Errorf("registry %q: a wildcard prefix cannot have a location", r.Prefix)
	}
	for _, m := range fr.Mirrors {
		switch m.PullFromMirror {
		case "", "all", "digest-only", "tag-only":
		default:
			return r, fmt.Errorf("registry %q: pull-from-mirror %q is not one of all, digest-only, tag-only", r.Prefix, m.PullFromMirror)
		}
		if m.Location == "" {
			return r, fmt.Errorf("registry %q: a mirror needs a location", r.Prefix)
		}
		r.Mirrors = append(r.Mirrors, Endpoint{Location: strings.TrimSuffix(m.Location, "/"), Insecure: m.Insecure, PullFromMirror: m.PullFromMirror})
	}
	return r, nil
}
