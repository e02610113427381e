package attrs

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lade-build/lade/blobs"
	"github.com/lade-build/lade/exporter"
)

// Output types.
const (
	TypeImage  = "image"
	TypeOCI    = "oci"
	TypeDocker = "docker"
)

// OutputTypes lists the accepted output types.
var OutputTypes = []string{TypeImage, TypeOCI, TypeDocker}

// Output is a parsed output: its type, destination, naming and push
// settings, and the exporter options and annotations.
type Output struct {
	Type string
	// Dest is the file or directory of oci/docker outputs ("-" for stdout).
	Dest string
	// Tar is false for an OCI layout directory (type=oci,tar=false).
	Tar bool
	// Names are the image names (name=a,b).
	Names []string
	// Push sends the image to the registry of each name.
	Push         bool
	PushByDigest bool
	Insecure     bool
	// Store names the image in the local store (type=image); default true.
	Store             bool
	Unpack            bool
	NameCanonical     bool
	DanglingPrefix    string
	DanglingEmptyOnly bool
	Options           exporter.Options
	Annotations       exporter.Annotations
}

// commonKeys are accepted by every output type.
var commonKeys = []string{
	"type", "name", "compression", "compression-level", "force-compression",
	"oci-mediatypes", "rewrite-timestamp", "keep-empty-layers", "source-date-epoch",
	"repair-history", "index", "soci", "soci-span-size", "soci-min-layer-size",
}

// typeKeys are the keys of one output type only.
var typeKeys = map[string][]string{
	TypeImage: {"push", "push-by-digest", "registry.insecure", "unpack", "store",
		"dangling-name-prefix", "danging-name-empty-only", "dangling-name-empty-only", "name-canonical"},
	TypeOCI:    {"dest", "tar"},
	TypeDocker: {"dest", "tar"},
}

// KnownKeys returns the keys valid for output type t, plus extra ones.
func KnownKeys(t string, extra ...string) []string {
	return append(append(append([]string(nil), commonKeys...), typeKeys[t]...), extra...)
}

// ParseOutput parses attrs of an output strictly: an unknown key is an
// error naming the nearest known key. ignore lists keys the caller handles
// itself (they are accepted and skipped).
func ParseOutput(m map[string]string, ignore ...string) (Output, error) {
	o, _, err := parseOutput(m, false, ignore)
	return o, err
}

// ParseOutputLenient parses attrs the way BuildKit's exporters read them:
// a key that is a near-miss of a known key (a typo) is still an error
// naming that key, but any other unknown key, and a key of another output
// type, is returned in rest, which BuildKit passes to the export as
// metadata. rewrite-timestamp without source-date-epoch is accepted: the
// epoch may come from the frontend.
func ParseOutputLenient(m map[string]string, ignore ...string) (o Output, rest map[string]string, err error) {
	return parseOutput(m, true, ignore)
}

func parseOutput(m map[string]string, lenient bool, ignore []string) (Output, map[string]string, error) {
	o := Output{Type: m["type"], Tar: true, Store: true}
	if o.Type == "" {
		return o, nil, fmt.Errorf("output has no type: use type=image, type=oci or type=docker")
	}
	if _, ok := typeKeys[o.Type]; !ok {
		return o, nil, fmt.Errorf("unknown output type %q: use image, oci or docker", o.Type)
	}
	known := KnownKeys(o.Type, ignore...)
	skip := map[string]bool{}
	for _, k := range ignore {
		skip[k] = true
	}
	rest := map[string]string{}
	for k, v := range m {
		switch {
		case skip[k]:
		case isAnnotationKey(k) || (!lenient && strings.HasPrefix(k, "annotation")):
			if err := parseAnnotation(&o.Annotations, k, v); err != nil {
				return o, nil, err
			}
		case slices.Contains(known, k):
			if err := o.set(k, v); err != nil {
				return o, nil, err
			}
		case !lenient:
			return o, nil, Unknown(k, append(known, "annotation.<key>"))
		default:
			if err := nearMiss(k, allKeys(ignore)); err != nil {
				return o, nil, err
			}
			rest[k] = v
		}
	}
	return o, rest, o.validate(lenient)
}

// isAnnotationKey reports whether k has the form of an annotation
// attribute (annotation.k, annotation-<level>..., annotation[<platform>]...)
// as BuildKit matches them; other keys starting with "annotation" are not.
func isAnnotationKey(k string) bool {
	rest, ok := strings.CutPrefix(k, "annotation")
	return ok && rest != "" && strings.ContainsRune(".-[", rune(rest[0]))
}

// allKeys returns the keys of every output type, plus extra ones.
func allKeys(extra []string) []string {
	out := append(append([]string(nil), commonKeys...), extra...)
	for _, t := range OutputTypes {
		out = append(out, typeKeys[t]...)
	}
	return out
}

func (o *Output) set(k, v string) error {
	var err error
	switch k {
	case "type":
	case "name":
		for _, n := range strings.Split(v, ",") {
			if n = strings.TrimSpace(n); n != "" {
				o.Names = append(o.Names, n)
			}
		}
	case "dest":
		o.Dest = v
	case "tar":
		o.Tar, err = ParseBool(k, v)
	case "push":
		o.Push, err = ParseBool(k, v)
	case "push-by-digest":
		o.PushByDigest, err = ParseBool(k, v)
	case "registry.insecure":
		o.Insecure, err = ParseBool(k, v)
	case "store":
		o.Store, err = ParseBool(k, v)
	case "unpack":
		o.Unpack, err = ParseBool(k, v)
	case "name-canonical":
		o.NameCanonical, err = ParseBool(k, v)
	case "dangling-name-prefix":
		o.DanglingPrefix = v
	case "danging-name-empty-only", "dangling-name-empty-only":
		o.DanglingEmptyOnly, err = ParseBool(k, v)
	default:
		return o.setOption(k, v)
	}
	return err
}

// setOption sets the exporter options keys.
func (o *Output) setOption(k, v string) error {
	var err error
	opts := &o.Options
	switch k {
	case "compression":
		opts.Compression.Type, err = blobs.ParseType(v)
	case "compression-level":
		lvl, perr := strconv.Atoi(v)
		if perr != nil {
			return fmt.Errorf("compression-level=%q is not an integer: use 0-9 for gzip, 1-22 for zstd and zstd:chunked", v)
		}
		opts.Compression.Level = &lvl
	case "force-compression":
		opts.ForceCompression, err = ParseBool(k, v)
	case "oci-mediatypes":
		var oci bool
		oci, err = ParseBool(k, v)
		opts.Docker = !oci
	case "rewrite-timestamp":
		opts.RewriteTimestamp, err = ParseBool(k, v)
	case "keep-empty-layers":
		opts.KeepEmptyLayers, err = ParseBool(k, v)
	case "repair-history":
		opts.RepairHistory, err = ParseBool(k, v)
	case "index":
		opts.Index, err = ParseBool(k, v)
	case "source-date-epoch":
		opts.Epoch, err = ParseEpoch(v)
	case "soci":
		opts.Soci, err = ParseBool(k, v)
	case "soci-span-size", "soci-min-layer-size":
		return setSociSize(opts, k, v)
	}
	return err
}

// setSociSize parses a SOCI size in bytes, as soci-snapshotter's CLI takes
// them; soci-min-layer-size=0 gives every layer a zTOC.
func setSociSize(opts *exporter.Options, k, v string) error {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < 0 || (k == "soci-span-size" && n == 0) {
		return fmt.Errorf("%s=%q is not a size in bytes: use e.g. %d", k, v, map[string]int64{"soci-span-size": 4 << 20, "soci-min-layer-size": 10 << 20}[k])
	}
	switch {
	case k == "soci-span-size":
		opts.SociSpanSize = n
	case n == 0:
		opts.SociMinLayerSize = -1
	default:
		opts.SociMinLayerSize = n
	}
	return nil
}

// ParseEpoch parses a SOURCE_DATE_EPOCH value (Unix seconds); the empty
// value means no epoch (nil), as in BuildKit.
func ParseEpoch(v string) (*time.Time, error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	sec, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || sec < 0 {
		return nil, fmt.Errorf("source-date-epoch=%q is not a Unix time in seconds: use e.g. $(git log -1 --format=%%ct)", v)
	}
	t := time.Unix(sec, 0).UTC()
	return &t, nil
}

func (o *Output) validate(lenient bool) error {
	if o.Options.Compression.Type == "" && o.Options.Compression.Level != nil {
		o.Options.Compression.Type = blobs.DefaultCompression.Type
	}
	opts := o.Options
	if lenient {
		// The epoch may come later, from the frontend.
		opts.RewriteTimestamp = opts.RewriteTimestamp && opts.Epoch != nil
	}
	if err := opts.Validate(); err != nil {
		return err
	}
	switch o.Type {
	case TypeOCI, TypeDocker:
		if o.Dest == "" {
			return fmt.Errorf("type=%s needs dest=FILE (or dest=DIR with tar=false)", o.Type)
		}
		if o.Type == TypeDocker && !o.Tar && !lenient {
			// BuildKit writes the OCI layout of a docker output with
			// tar=false into the client's directory; lade's CLI does not.
			return fmt.Errorf("type=docker writes a tar: tar=false is only for type=oci")
		}
	case TypeImage:
		if lenient {
			// BuildKit pushes nothing then, without an error.
			break
		}
		if len(o.Names) == 0 && o.Push {
			return fmt.Errorf("push=true needs name=REGISTRY/REPO[:TAG]")
		}
		if o.PushByDigest && !o.Push {
			return fmt.Errorf("push-by-digest=true needs push=true")
		}
	}
	return nil
}
