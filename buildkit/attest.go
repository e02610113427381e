package buildkit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/labels"
	intoto "github.com/in-toto/in-toto-golang/in_toto"
	"github.com/moby/buildkit/exporter/attestation"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/solver/result"
	"github.com/moby/buildkit/util/purl"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/package-url/packageurl-go"
)

// Attestation manifests as BuildKit writes them.
const (
	annotationReferenceType    = "vnd.docker.reference.type"
	annotationReferenceDigest  = "vnd.docker.reference.digest"
	referenceTypeAttestation   = "attestation-manifest"
	attestationArtifactType    = "application/vnd.docker.attestation.manifest.v1+json"
	annotationPredicateType    = "in-toto.io/predicate-type"
	intotoPlatformOS           = "unknown"
	intotoPlatformArchitecture = "unknown"
)

// attestationManifest writes the in-toto statements of one platform's
// attestations as an attestation manifest referring to target, the
// platform's image manifest. Statements without subjects get the image's
// names (as docker purls) and target's digest. With artifact, the manifest
// is an OCI artifact with target as its subject.
func (i *instance) attestationManifest(ctx context.Context, sid string, pp *platformPlan, target ocispecs.Descriptor, names []string, p *plan, artifact bool) (ocispecs.Descriptor, error) {
	sg := session.NewGroup(sid)
	atts, err := attestation.Unbundle(ctx, sg, pp.atts)
	if err != nil {
		return ocispecs.Descriptor{}, err
	}
	if err := supplementSBOMs(ctx, sg, pp.ref, pp.layerDigests, atts); err != nil {
		return ocispecs.Descriptor{}, err
	}
	var subjects []intoto.Subject
	for _, name := range names {
		if name == "" || strings.Contains(name, "@") {
			continue
		}
		pl, err := purl.RefToPURL(packageurl.TypeDocker, name, &pp.platform)
		if err != nil {
			return ocispecs.Descriptor{}, err
		}
		subjects = append(subjects, intoto.Subject{Name: pl, Digest: result.ToDigestMap(target.Digest)})
	}
	stmts, err := attestation.MakeInTotoStatements(ctx, sg, atts, subjects)
	if err != nil {
		return ocispecs.Descriptor{}, err
	}
	layers := make([]ocispecs.Descriptor, len(stmts))
	for n, st := range stmts {
		data, err := json.Marshal(st)
		if err != nil {
			return ocispecs.Descriptor{}, fmt.Errorf("marshal attestation: %w", err)
		}
		layers[n] = ocispecs.Descriptor{
			MediaType: intoto.PayloadType, Digest: digest.FromBytes(data), Size: int64(len(data)),
			Annotations: map[string]string{annotationPredicateType: st.PredicateType},
		}
		if err := i.writeBlob(ctx, layers[n], data, nil); err != nil {
			return ocispecs.Descriptor{}, err
		}
	}
	return i.writeAttestationManifest(ctx, target, layers, p.oci, artifact)
}

// writeAttestationManifest writes the config and manifest over the
// statement layers.
func (i *instance) writeAttestationManifest(ctx context.Context, target ocispecs.Descriptor, layers []ocispecs.Descriptor, oci, artifact bool) (ocispecs.Descriptor, error) {
	manifestType, configType := ocispecs.MediaTypeImageManifest, ocispecs.MediaTypeImageConfig
	if !oci {
		manifestType, configType = images.MediaTypeDockerSchema2Manifest, images.MediaTypeDockerSchema2Config
	}
	cfgDesc := ocispecs.DescriptorEmptyJSON
	cfg := cfgDesc.Data
	if !artifact {
		img := ocispecs.Image{Platform: ocispecs.Platform{OS: intotoPlatformOS, Architecture: intotoPlatformArchitecture}}
		img.RootFS.Type = "layers"
		for _, l := range layers {
			img.RootFS.DiffIDs = append(img.RootFS.DiffIDs, l.Digest)
		}
		var err error
		if cfg, err = json.Marshal(img); err != nil {
			return ocispecs.Descriptor{}, err
		}
		cfgDesc = ocispecs.Descriptor{MediaType: configType, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))}
	}
	// An artifact's config is the OCI empty descriptor, its data embedded
	// in the manifest as BuildKit writes it.
	if err := i.writeBlob(ctx, cfgDesc, cfg, nil); err != nil {
		return ocispecs.Descriptor{}, err
	}
	m := ocispecs.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: manifestType, Config: cfgDesc, Layers: layers}
	if artifact {
		m.ArtifactType = attestationArtifactType
		m.Subject = &ocispecs.Descriptor{MediaType: target.MediaType, Digest: target.Digest, Size: target.Size}
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return ocispecs.Descriptor{}, err
	}
	gc := map[string]string{"containerd.io/gc.ref.content.0": cfgDesc.Digest.String()}
	for n, l := range layers {
		gc[fmt.Sprintf("containerd.io/gc.ref.content.%d", n+1)] = l.Digest.String()
	}
	desc := ocispecs.Descriptor{
		MediaType: manifestType, Digest: digest.FromBytes(data), Size: int64(len(data)),
		Platform: &ocispecs.Platform{OS: intotoPlatformOS, Architecture: intotoPlatformArchitecture},
		Annotations: map[string]string{
			annotationReferenceType:   referenceTypeAttestation,
			annotationReferenceDigest: target.Digest.String(),
		},
	}
	done := oneOff(ctx, "exporting attestation manifest "+desc.Digest.String())
	return desc, done(i.writeBlob(ctx, desc, data, gc))
}

// extendIndex rewrites the index root with extra manifests appended, and
// returns the new root (same media type and annotations).
func (i *instance) extendIndex(ctx context.Context, root ocispecs.Descriptor, extra []ocispecs.Descriptor) (ocispecs.Descriptor, error) {
	if len(extra) == 0 {
		return root, nil
	}
	data, err := content.ReadBlob(ctx, i.e.opt.ContentStore, root)
	if err != nil {
		return ocispecs.Descriptor{}, fmt.Errorf("read index %s: %w", root.Digest, err)
	}
	var idx ocispecs.Index
	if err := json.Unmarshal(data, &idx); err != nil {
		return ocispecs.Descriptor{}, fmt.Errorf("index %s: %w", root.Digest, err)
	}
	idx.Manifests = append(idx.Manifests, extra...)
	if data, err = json.MarshalIndent(idx, "", "  "); err != nil {
		return ocispecs.Descriptor{}, err
	}
	gc := map[string]string{}
	for n, m := range idx.Manifests {
		gc[fmt.Sprintf("containerd.io/gc.ref.content.m.%d", n)] = m.Digest.String()
	}
	desc := root
	desc.Digest, desc.Size = digest.FromBytes(data), int64(len(data))
	done := oneOff(ctx, "exporting manifest list "+desc.Digest.String())
	return desc, done(i.writeBlob(ctx, desc, data, gc))
}

// writeBlob writes data under desc into the worker's content store with
// the given labels; an existing blob is fine.
func (i *instance) writeBlob(ctx context.Context, desc ocispecs.Descriptor, data []byte, gc map[string]string) error {
	l := map[string]string{}
	for k, v := range gc {
		l[k] = v
	}
	if images.IsLayerType(desc.MediaType) {
		l[labels.LabelUncompressed] = desc.Digest.String()
	}
	ref := "lade-" + desc.Digest.Encoded()
	if err := content.WriteBlob(ctx, i.e.opt.ContentStore, ref, bytes.NewReader(data), desc, content.WithLabels(l)); err != nil {
		return fmt.Errorf("write %s %s: %w", desc.MediaType, desc.Digest, err)
	}
	return nil
}
