package buildkit

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/lade-build/lade/internal/attrs"
	cacheconfig "github.com/moby/buildkit/cache/config"
	bkcompression "github.com/moby/buildkit/util/compression"
)

// BuildKit's exporter keys that lade's output parser does not know; the
// adapter handles them here.
const (
	keyOCIArtifact       = "oci-artifact"
	keyAttestInline      = "attestation-inline"
	keyPreferNondist     = "prefer-nondist-layers"
	keyStoreIncomplete   = "unsafe-internal-store-allow-incomplete"
	keyOCIMediaTypes     = "oci-mediatypes"
	keyName              = "name"
	keyDest              = "dest"
	keyType              = "type"
	keyEpoch             = "source-date-epoch"
	keyCompression       = "compression"
	nameFromFrontend     = "*"
	inlineCacheConfigKey = "moby.buildkit.cache.v0"
)

// extraKeys are accepted on top of lade's keys for every output type.
var extraKeys = []string{keyOCIArtifact, keyAttestInline, keyPreferNondist, keyStoreIncomplete}

// settings are an exporter instance's parsed attributes.
type settings struct {
	// out is lade's parse of the attributes: names, push, store, exporter
	// options and annotations.
	out attrs.Output
	// name is the raw name attribute: "*" takes image.name from the
	// frontend's metadata.
	name string
	// ociTypes is the explicit oci-mediatypes, nil for BuildKit's default
	// (OCI from compatibility version 30, or with attestations).
	ociTypes *bool
	// ociArtifact is the explicit oci-artifact, nil for the default.
	ociArtifact *bool
	// inlineAttestations keeps attestations marked inline-only.
	inlineAttestations bool
	refCfg             cacheconfig.RefConfig
	storeIncomplete    bool
	// epochReset is source-date-epoch="": no epoch, not even the
	// frontend's, as in BuildKit.
	epochReset bool
	// meta are the attributes lade has no use for: BuildKit passes them to
	// the export as source metadata, and so does lade.
	meta map[string]string
	// warnings name the attributes of meta that are no known client's
	// (shown in the build's progress).
	warnings []string
	// estargz is compression=estargz: BuildKit's eStargz compressor makes
	// the new blobs (lade's library has none), with OCI media types.
	estargz bool
}

// quietKeys are attributes clients send that have no effect on an export
// in BuildKit either (they pass through as metadata): no warning for them.
// prefer-image-digest is buildx's for a Docker engine with the containerd
// image store; buildx reads the manifest digest from the response, which
// lade always returns, as BuildKit does.
var quietKeys = []string{"prefer-image-digest", "buildinfo", "buildinfo-attrs", "context"}

// quietPrefixes are prefixes of such attributes: BuildKit's own tests pass
// attest:* options to exporters.
var quietPrefixes = []string{"attest:"}

// parseSettings parses the attributes of an exporter of type typ (image,
// oci or docker) strictly: an unknown key is an error naming the nearest
// valid key, booleans take an empty value as true. def are the daemon's
// defaults for what the attributes leave unset.
func parseSettings(typ string, in map[string]string, def Defaults) (*settings, error) {
	m := maps.Clone(in)
	if m == nil {
		m = map[string]string{}
	}
	if _, ok := m[keyType]; ok {
		return nil, fmt.Errorf("attribute %q is not an exporter attribute: the exporter type is %s", keyType, typ)
	}
	m[keyType] = typ
	estargz := strings.TrimSpace(m[keyCompression]) == bkcompression.EStargz.String()
	if estargz {
		delete(m, keyCompression) // gzip's rules (levels, media types) for lade's parser
	}
	if typ != attrs.TypeImage {
		if _, ok := m[keyDest]; !ok {
			// buildctl and buildx keep dest on the client.
			m[keyDest] = "-"
		}
	}
	out, rest, err := attrs.ParseOutputLenient(m, extraKeys...)
	if err != nil {
		return nil, fmt.Errorf("%s exporter: %w", typ, err)
	}
	s := &settings{out: out, name: strings.TrimSpace(in[keyName]), inlineAttestations: typ == attrs.TypeImage, meta: rest, estargz: estargz}
	v, ok := in[keyEpoch]
	s.epochReset = ok && strings.TrimSpace(v) == ""
	s.warnings = passThroughWarnings(typ, rest)
	if _, ok := in[keyOCIMediaTypes]; ok {
		v := !out.Options.Docker
		s.ociTypes = &v
	}
	def.apply(s, in)
	if err := s.parseExtra(in); err != nil {
		return nil, fmt.Errorf("%s exporter: %w", typ, err)
	}
	if err := s.buildRefConfig(); err != nil {
		return nil, fmt.Errorf("%s exporter: %w", typ, err)
	}
	return s, nil
}

// parseExtra parses BuildKit's keys lade's parser leaves to the adapter.
func (s *settings) parseExtra(in map[string]string) error {
	for _, k := range extraKeys {
		v, ok := in[k]
		if !ok {
			continue
		}
		b, err := attrs.ParseBool(k, v)
		if err != nil {
			return err
		}
		switch k {
		case keyOCIArtifact:
			s.ociArtifact = &b
		case keyAttestInline:
			s.inlineAttestations = b
		case keyPreferNondist:
			s.refCfg.PreferNonDistributable = b
		case keyStoreIncomplete:
			s.storeIncomplete = b
		}
	}
	if s.estargz && s.ociTypes != nil && !*s.ociTypes {
		return fmt.Errorf("compression=estargz needs OCI media types: remove oci-mediatypes=false")
	}
	if s.ociArtifact != nil && *s.ociArtifact && s.ociTypes != nil && !*s.ociTypes {
		return fmt.Errorf("oci-artifact=true needs OCI media types: remove oci-mediatypes=false")
	}
	return nil
}

// buildRefConfig sets the compression BuildKit's blob pipeline uses for new
// layer blobs: lade's compressors for gzip and zstd.
func (s *settings) buildRefConfig() error {
	c := s.out.Options.Compression
	t, err := bkCompression(c.Type)
	if err != nil {
		return err
	}
	if s.estargz {
		t = bkcompression.EStargz
	}
	s.refCfg.Compression = bkcompression.Config{Type: t, Force: s.out.Options.ForceCompression, Level: c.Level}
	return nil
}

// ociTypesFor returns whether OCI media types are used, given BuildKit's
// default for this build.
func (s *settings) ociTypesFor(def bool) bool {
	if s.ociTypes != nil {
		return *s.ociTypes
	}
	return def
}

// passThroughWarnings returns a warning per attribute of rest that no known
// client sends, sorted.
func passThroughWarnings(typ string, rest map[string]string) []string {
	var out []string
	for k := range rest {
		quiet := slices.Contains(quietKeys, k)
		for _, p := range quietPrefixes {
			quiet = quiet || strings.HasPrefix(k, p)
		}
		if quiet {
			continue
		}
		out = append(out, fmt.Sprintf("%s exporter: attribute %q is not an exporter option of lade or BuildKit: passed to the export as metadata, as BuildKit does", typ, k))
	}
	slices.Sort(out)
	return out
}
