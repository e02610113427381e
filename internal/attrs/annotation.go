package attrs

import (
	"fmt"
	"strings"

	"github.com/lade-build/lade/exporter"
)

// annotation levels as BuildKit names them.
const (
	levelManifest           = "manifest"
	levelManifestDescriptor = "manifest-descriptor"
	levelIndex              = "index"
	levelIndexDescriptor    = "index-descriptor"
)

// parseAnnotation parses annotation.<k>, annotation-<level>.<k>,
// annotation[<platform>].<k> and annotation-<level>[<platform>].<k>.
func parseAnnotation(a *exporter.Annotations, key, v string) error {
	rest := strings.TrimPrefix(key, "annotation")
	level := levelManifest
	if strings.HasPrefix(rest, "-") {
		end := strings.IndexAny(rest, ".[")
		if end < 0 {
			return fmt.Errorf("annotation attribute %q has no key: use annotation-<level>.<key>=<value>", key)
		}
		level, rest = rest[1:end], rest[end:]
	}
	platform := ""
	if strings.HasPrefix(rest, "[") {
		end := strings.Index(rest, "]")
		if end < 0 {
			return fmt.Errorf("annotation attribute %q: unclosed [platform]", key)
		}
		platform, rest = rest[1:end], rest[end+1:]
		if platform == "" {
			return fmt.Errorf("annotation attribute %q: empty [platform]", key)
		}
	}
	name, ok := strings.CutPrefix(rest, ".")
	if !ok || name == "" {
		return fmt.Errorf("annotation attribute %q has no key: use annotation.<key>=<value>", key)
	}
	switch level {
	case levelManifest:
		a.Manifest = setPlatformed(a.Manifest, platform, name, v)
	case levelManifestDescriptor:
		a.ManifestDescriptor = setPlatformed(a.ManifestDescriptor, platform, name, v)
	case levelIndex, levelIndexDescriptor:
		if platform != "" {
			// As in BuildKit, an index annotation for a platform goes on
			// the index, and the platform must be one the image has:
			// an entry with no keys makes the export check that.
			a.Manifest = setPlatformed(a.Manifest, platform, "", "")
			delete(a.Manifest[platform], "")
		}
		if level == levelIndex {
			a.Index = setFlat(a.Index, name, v)
		} else {
			a.IndexDescriptor = setFlat(a.IndexDescriptor, name, v)
		}
	default:
		return fmt.Errorf("annotation attribute %q: unknown level %q: use manifest, manifest-descriptor, index or index-descriptor", key, level)
	}
	return nil
}

func setPlatformed(m map[string]map[string]string, platform, k, v string) map[string]map[string]string {
	if m == nil {
		m = map[string]map[string]string{}
	}
	m[platform] = setFlat(m[platform], k, v)
	return m
}

func setFlat(m map[string]string, k, v string) map[string]string {
	if m == nil {
		m = map[string]string{}
	}
	m[k] = v
	return m
}
