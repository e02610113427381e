package buildkit

import (
	"strings"
	"testing"

	"github.com/lade-build/lade/blobs"
	bkcompression "github.com/moby/buildkit/util/compression"
)

func TestParseSettings(t *testing.T) {
	cases := []struct {
		typ  string
		in   map[string]string
		want string // error substring, "" for success
		chk  func(*settings) bool
	}{
		{"image", map[string]string{"name": "r/x:1,r/y:2", "push": "true", "registry.insecure": ""}, "", func(s *settings) bool {
			return s.out.Push && s.out.Insecure && len(s.out.Names) == 2 && s.name == "r/x:1,r/y:2"
		}},
		{"image", map[string]string{"name": "*", "push-by-digest": "true", "push": "true"}, "", func(s *settings) bool { return s.out.PushByDigest && s.name == "*" }},
		{"image", map[string]string{"unpack": "false", "store": "false", "dangling-name-prefix": "p", "danging-name-empty-only": "", "name-canonical": "true"}, "", func(s *settings) bool {
			return !s.out.Store && s.out.DanglingPrefix == "p" && s.out.DanglingEmptyOnly && s.out.NameCanonical
		}},
		{"image", nil, "", func(s *settings) bool {
			return s.ociTypes == nil && s.inlineAttestations && s.refCfg.Compression.Type == ladeGzip && s.refCfg.Compression.Level == nil
		}},
		{"image", map[string]string{"oci-mediatypes": "false"}, "", func(s *settings) bool { return s.ociTypes != nil && !*s.ociTypes }},
		{"image", map[string]string{"compression": "zstd", "compression-level": "19", "force-compression": ""}, "", func(s *settings) bool {
			c := s.refCfg.Compression
			return c.Type == ladeZstd && *c.Level == 19 && c.Force
		}},
		{"image", map[string]string{"compression": "gzip-compat"}, "", func(s *settings) bool { return s.refCfg.Compression.Type == bkcompression.Gzip }},
		{"image", map[string]string{"compression": "uncompressed"}, "", func(s *settings) bool { return s.refCfg.Compression.Type == bkcompression.Uncompressed }},
		{"image", map[string]string{"source-date-epoch": "10", "rewrite-timestamp": "true"}, "", func(s *settings) bool {
			return s.out.Options.Epoch.Unix() == 10 && s.out.Options.RewriteTimestamp
		}},
		{"image", map[string]string{"annotation.a": "1", "annotation-index.b": "2", "annotation[linux/arm64].c": "3", "annotation-manifest-descriptor.d": "4"}, "", func(s *settings) bool {
			a := s.out.Annotations
			return a.Manifest[""]["a"] == "1" && a.Index["b"] == "2" && a.Manifest["linux/arm64"]["c"] == "3" && a.ManifestDescriptor[""]["d"] == "4"
		}},
		{"image", map[string]string{"oci-artifact": "true", "attestation-inline": "false", "prefer-nondist-layers": "", "unsafe-internal-store-allow-incomplete": "1"}, "", func(s *settings) bool {
			return *s.ociArtifact && !s.inlineAttestations && s.refCfg.PreferNonDistributable && s.storeIncomplete
		}},
		{"image", map[string]string{"keep-empty-layers": "true"}, "", func(s *settings) bool { return s.out.Options.KeepEmptyLayers }},
		{"oci", map[string]string{"name": "x:1", "tar": "false"}, "", func(s *settings) bool { return !s.out.Tar && !s.inlineAttestations }},
		{"docker", map[string]string{}, "", func(s *settings) bool { return s.out.Tar }},
		{"image", map[string]string{"psh": "true"}, `unknown attribute "psh": did you mean "push"?`, nil},
		{"image", map[string]string{"compresion": "zstd"}, `did you mean "compression"`, nil},
		// What BuildKit passes through as metadata passes here too; only
		// keys no client is known to send give a warning.
		{"oci", map[string]string{"push": "true"}, "", func(s *settings) bool {
			return s.meta["push"] == "true" && len(s.warnings) == 1 && strings.Contains(s.warnings[0], `"push"`)
		}},
		{"image", map[string]string{"attest:provenance": "mode=max", "prefer-image-digest": "true", "buildinfo-attrs": "1", "buildinfo": "0", "oci-artifact": "false", "unsafe-internal-store-allow-incomplete": "true"}, "", func(s *settings) bool {
			return len(s.meta) == 4 && len(s.warnings) == 0 && s.storeIncomplete && !*s.ociArtifact
		}},
		{"oci", map[string]string{"source-date-epoch": ""}, "", func(s *settings) bool { return s.epochReset && s.out.Options.Epoch == nil }},
		{"oci", map[string]string{"source-date-epoch": "5"}, "", func(s *settings) bool { return !s.epochReset }},
		{"image", map[string]string{"rewrite-timestamp": "true"}, "", func(s *settings) bool { return s.out.Options.RewriteTimestamp }},
		{"image", map[string]string{"danging-name-empty-only": "true", "dangling-name-empty-only": "true"}, "", func(s *settings) bool { return s.out.DanglingEmptyOnly }},
		{"image", map[string]string{"compression-level": "3", "force-compression": "true", "tar": "true"}, "", func(s *settings) bool {
			return *s.refCfg.Compression.Level == 3 && s.refCfg.Compression.Force && len(s.warnings) == 1
		}},
		{"image", map[string]string{"compression": "estargz", "compression-level": "3", "force-compression": "true"}, "", func(s *settings) bool {
			c := s.refCfg.Compression
			return s.estargz && c.Type == bkcompression.EStargz && *c.Level == 3 && c.Force
		}},
		{"image", map[string]string{"compression": "estargz", "oci-mediatypes": "false"}, "estargz needs OCI media types", nil},
		{"image", map[string]string{"compression": "estargz", "compression-level": "12"}, "out of range", nil},
		{"image", map[string]string{"compression": "gzip", "compression-level": "12"}, "out of range", nil},
		{"image", map[string]string{"push": "yes"}, `push="yes" is not a boolean`, nil},
		{"image", map[string]string{"oci-artifact": "true", "oci-mediatypes": "false"}, "oci-artifact=true needs OCI media types", nil},
		{"image", map[string]string{"type": "oci"}, "not an exporter attribute", nil},
	}
	for _, c := range cases {
		s, err := parseSettings(c.typ, c.in, Defaults{})
		if c.want != "" {
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s %v: error %v, want %q", c.typ, c.in, err, c.want)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s %v: %v", c.typ, c.in, err)
			continue
		}
		if !c.chk(s) {
			t.Errorf("%s %v: parsed wrong: %+v", c.typ, c.in, s)
		}
	}
}

func TestParseSettingsKeepsInput(t *testing.T) {
	in := map[string]string{"name": "x"}
	if _, err := parseSettings("oci", in, Defaults{}); err != nil {
		t.Fatal(err)
	}
	if len(in) != 1 {
		t.Fatalf("input changed: %v", in)
	}
}

func TestBKCompression(t *testing.T) {
	for _, typ := range []blobs.Type{blobs.Gzip, blobs.GzipCompat, blobs.Zstd, blobs.Uncompressed} {
		ct, err := bkCompression(typ)
		if err != nil {
			t.Fatal(err)
		}
		want := map[blobs.Type]string{blobs.Gzip: "gzip", blobs.GzipCompat: "gzip", blobs.Zstd: "zstd", blobs.Uncompressed: "uncompressed"}[typ]
		if ct.String() != want {
			t.Errorf("%s: BuildKit name %q, want %q", typ, ct.String(), want)
		}
	}
	if _, err := bkCompression("lz4"); err == nil {
		t.Error("lz4 accepted")
	}
}
