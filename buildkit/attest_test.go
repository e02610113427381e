package buildkit

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/lade-build/lade/internal/testutil"
	bkexporter "github.com/moby/buildkit/exporter"
	containerdsnapshot "github.com/moby/buildkit/snapshot/containerd"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestAttestationManifestArtifact checks the attestation manifest against
// what BuildKit writes (its TestExportAttestationsOCIArtifact): as an OCI
// artifact, the config is the OCI empty descriptor with its data embedded
// and the image manifest is the subject; otherwise a config listing the
// statements as layers.
func TestAttestationManifestArtifact(t *testing.T) {
	_, meta := testutil.ContentStores(t)
	cs := containerdsnapshot.NewContentStore(meta, "buildkit")
	i := &instance{e: &Exporter{opt: Opt{ContentStore: cs}}}
	ctx := context.Background()
	target := ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageManifest, Digest: digest.FromString("image"), Size: 5}
	stmt := []byte(`{"_type":"https://in-toto.io/Statement/v0.1"}`)
	layer := ocispecs.Descriptor{MediaType: "application/vnd.in-toto+json", Digest: digest.FromBytes(stmt), Size: int64(len(stmt))}
	if err := i.writeBlob(ctx, layer, stmt, nil); err != nil {
		t.Fatal(err)
	}
	for _, artifact := range []bool{true, false} {
		desc, err := i.writeAttestationManifest(ctx, target, []ocispecs.Descriptor{layer}, true, artifact)
		if err != nil {
			t.Fatal(err)
		}
		data, err := content.ReadBlob(ctx, cs, desc)
		if err != nil {
			t.Fatal(err)
		}
		var m ocispecs.Manifest
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		if artifact {
			if !reflect.DeepEqual(m.Config, ocispecs.DescriptorEmptyJSON) {
				t.Errorf("artifact config %+v, want the OCI empty descriptor with data", m.Config)
			}
			if m.Subject == nil || m.Subject.Digest != target.Digest || m.ArtifactType != attestationArtifactType {
				t.Errorf("artifact subject %+v, type %q", m.Subject, m.ArtifactType)
			}
		} else if m.Config.MediaType != ocispecs.MediaTypeImageConfig || m.Config.Data != nil || m.Subject != nil {
			t.Errorf("image-manifest attestation config %+v subject %+v", m.Config, m.Subject)
		}
		if _, err := cs.Info(ctx, m.Config.Digest); err != nil {
			t.Errorf("config blob not stored: %v", err)
		}
	}
}

// TestOCIArtifactNeedsOCITypes checks oci-artifact=true fails as in
// BuildKit when the build's media types default to Docker's, and passes
// with OCI types.
func TestOCIArtifactNeedsOCITypes(t *testing.T) {
	for _, tc := range []struct {
		attrs map[string]string
		fails bool
	}{
		{map[string]string{"oci-artifact": "true"}, true},
		{map[string]string{"oci-artifact": "true", "oci-mediatypes": "true"}, false},
		{map[string]string{"oci-artifact": "false"}, false},
	} {
		s, err := parseSettings("image", tc.attrs, Defaults{})
		if err != nil {
			t.Fatal(err)
		}
		i := &instance{e: &Exporter{typ: "image"}, s: s}
		_, err = i.newPlan(&bkexporter.Source{Metadata: map[string][]byte{}}, 0)
		if (err != nil) != tc.fails {
			t.Errorf("%v: error %v, want failure %v", tc.attrs, err, tc.fails)
		}
	}
}
