//go:build integration

package frontendtest

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lade-build/lade/exporter/exportertest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// statement is the part of an in-toto statement the test checks.
type statement struct {
	Type          string `json:"_type"`
	PredicateType string `json:"predicateType"`
	Subject       []struct {
		Name   string            `json:"name"`
		Digest map[string]string `json:"digest"`
	} `json:"subject"`
	Predicate json.RawMessage `json:"predicate"`
}

// attestationShape is what must match stock BuildKit's attestation
// manifest.
type attestationShape struct {
	ArtifactType, ConfigType, LayerType, PredicateType, RefType string
	Platform                                                    string
}

// provenanceBuild builds mainDockerfile with a max-mode provenance
// attestation into an OCI tar on d, checks the attestation manifest and
// returns its shape.
func provenanceBuild(t *testing.T, d *daemon, ctx string) attestationShape {
	t.Helper()
	tarPath := filepath.Join(t.TempDir(), d.kind+".tar")
	d.mustBuild(t, ctx, "--opt", "attest:provenance=mode=max", "--output", "type=oci,dest="+tarPath+",name=lade/x:v1")
	l := openLayoutTar(t, tarPath)
	if l.root.MediaType != ocispec.MediaTypeImageIndex {
		t.Fatalf("%s: root %s, want an index", d.kind, l.root.MediaType)
	}
	var idx ocispec.Index
	l.json(t, l.root, &idx)
	if len(idx.Manifests) != 2 {
		t.Fatalf("%s: index has %d manifests, want image + attestation", d.kind, len(idx.Manifests))
	}
	img, att := idx.Manifests[0], idx.Manifests[1]
	if _, err := exportertest.Verify(context.Background(), l, img); err != nil {
		t.Fatalf("%s: image: %v", d.kind, err)
	}
	if att.Annotations["vnd.docker.reference.digest"] != img.Digest.String() {
		t.Fatalf("%s: attestation refers to %s, image is %s", d.kind, att.Annotations["vnd.docker.reference.digest"], img.Digest)
	}
	var am ocispec.Manifest
	l.json(t, att, &am)
	if len(am.Layers) != 1 {
		t.Fatalf("%s: attestation manifest has %d layers, want 1", d.kind, len(am.Layers))
	}
	if am.Subject != nil && am.Subject.Digest != img.Digest {
		t.Fatalf("%s: attestation subject %s, image %s", d.kind, am.Subject.Digest, img.Digest)
	}
	var st statement
	l.json(t, am.Layers[0], &st)
	if len(st.Subject) == 0 || st.Subject[0].Digest["sha256"] != img.Digest.Encoded() {
		t.Fatalf("%s: statement subjects %+v, image %s", d.kind, st.Subject, img.Digest)
	}
	if !strings.HasPrefix(st.PredicateType, "https://slsa.dev/provenance/") || len(st.Predicate) < 10 {
		t.Fatalf("%s: statement %s with predicate %.200s", d.kind, st.PredicateType, st.Predicate)
	}
	mustContain(t, d.kind+" subject", st.Subject[0].Name, "pkg:docker/lade/x@v1")
	return attestationShape{
		ArtifactType: am.ArtifactType, ConfigType: am.Config.MediaType, LayerType: am.Layers[0].MediaType,
		PredicateType: am.Layers[0].Annotations["in-toto.io/predicate-type"],
		RefType:       att.Annotations["vnd.docker.reference.type"], Platform: att.Platform.OS + "/" + att.Platform.Architecture,
	}
}

// TestProvenanceAttestation: --opt attest:provenance=mode=max gives an
// attestation manifest in the index, shaped as stock BuildKit's.
func TestProvenanceAttestation(t *testing.T) {
	ctx := contextDir(t, mainDockerfile, nil)
	got := provenanceBuild(t, startDaemon(t, lade, ""), ctx)
	want := provenanceBuild(t, startDaemon(t, stock, ""), ctx)
	if got != want {
		t.Fatalf("attestation manifest:\n lade  %+v\n stock %+v", got, want)
	}
	if got.RefType != "attestation-manifest" || got.Platform != "unknown/unknown" {
		t.Fatalf("attestation descriptor %+v", got)
	}
}
