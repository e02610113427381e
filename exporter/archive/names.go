// Package archive holds what lade's file destinations share: the blob graph
// of an image walked children-first, verified blob copies, deterministic tar
// writing, image names as OCI layouts and docker archives record them, and
// safe read access to layouts (directories and tar files) for imports.
//
// It is the common code of packages exporter/oci and exporter/docker; it
// never imports github.com/moby/buildkit.
package archive

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/distribution/reference"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Name is one image name of an export, parsed once.
type Name struct {
	// Full is the normalized reference, e.g. "docker.io/library/foo:latest".
	// It is recorded as the io.containerd.image.name annotation.
	Full string
	// Familiar is the short form docker prints, e.g. "foo:latest". It is
	// what manifest.json's RepoTags hold.
	Familiar string
	// Tag is the tag alone, e.g. "latest": the org.opencontainers.image.ref.name
	// that `skopeo inspect oci:DIR:TAG` and `umoci unpack --image DIR:TAG`
	// look up.
	Tag string
}

// ParseName parses an image name such as "foo", "foo:1" or
// "registry:5000/team/foo:1". A missing tag becomes "latest". Names with a
// digest are rejected: they cannot name newly exported content.
func ParseName(s string) (Name, error) {
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return Name{}, fmt.Errorf("parse image name %q: %w", s, err)
	}
	if _, ok := named.(reference.Digested); ok {
		return Name{}, fmt.Errorf("image name %q has a digest: name an exported image with a tag", s)
	}
	tagged, ok := reference.TagNameOnly(named).(reference.NamedTagged)
	if !ok {
		return Name{}, fmt.Errorf("image name %q has no tag", s)
	}
	return Name{
		Full:     tagged.String(),
		Familiar: reference.FamiliarString(tagged),
		Tag:      tagged.Tag(),
	}, nil
}

// ParseNames parses every name with ParseName and drops exact duplicates
// (after normalization), keeping the first occurrence's position.
func ParseNames(names []string) ([]Name, error) {
	out := make([]Name, 0, len(names))
	seen := make(map[string]bool, len(names))
	for _, s := range names {
		n, err := ParseName(s)
		if err != nil {
			return nil, err
		}
		if seen[n.Full] {
			continue
		}
		seen[n.Full] = true
		out = append(out, n)
	}
	return out, nil
}

// IndexEntries returns the index.json entries naming root: one per name,
// annotated with io.containerd.image.name (the full name) and
// org.opencontainers.image.ref.name (the tag), or a single unnamed entry when
// names is empty. A non-nil created adds org.opencontainers.image.created
// (RFC 3339, UTC) unless root has one (an index-descriptor annotation
// asked for it, which wins as in BuildKit). Root's own annotations are kept.
func IndexEntries(root ocispec.Descriptor, names []Name, created *time.Time) []ocispec.Descriptor {
	entry := func(n *Name) ocispec.Descriptor {
		d := root
		d.Data = nil
		d.Annotations = make(map[string]string, len(root.Annotations)+3)
		for k, v := range root.Annotations {
			d.Annotations[k] = v
		}
		if n != nil {
			d.Annotations[AnnotationImageName] = n.Full
			d.Annotations[ocispec.AnnotationRefName] = n.Tag
		}
		if _, set := d.Annotations[ocispec.AnnotationCreated]; created != nil && !set {
			d.Annotations[ocispec.AnnotationCreated] = created.UTC().Format(time.RFC3339)
		}
		if len(d.Annotations) == 0 {
			d.Annotations = nil
		}
		return d
	}
	if len(names) == 0 {
		return []ocispec.Descriptor{entry(nil)}
	}
	out := make([]ocispec.Descriptor, 0, len(names))
	for i := range names {
		out = append(out, entry(&names[i]))
	}
	return out
}

// MergeIndex returns existing with add merged in: an existing entry is
// dropped when an added entry has the same ref name, or, for entries without
// a ref name, the same digest. Added entries come last, in order.
func MergeIndex(existing, add []ocispec.Descriptor) []ocispec.Descriptor {
	names := make(map[string]bool)
	unnamed := make(map[string]bool)
	for _, d := range add {
		if n := d.Annotations[ocispec.AnnotationRefName]; n != "" {
			names[n] = true
		} else {
			unnamed[d.Digest.String()] = true
		}
	}
	out := make([]ocispec.Descriptor, 0, len(existing)+len(add))
	for _, d := range existing {
		n := d.Annotations[ocispec.AnnotationRefName]
		if (n != "" && names[n]) || (n == "" && unnamed[d.Digest.String()]) {
			continue
		}
		out = append(out, d)
	}
	return append(out, add...)
}

// EncodeIndex returns the JSON of an OCI index (index.json) listing
// manifests.
func EncodeIndex(manifests []ocispec.Descriptor) ([]byte, error) {
	if manifests == nil {
		manifests = []ocispec.Descriptor{}
	}
	idx := ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: manifests,
	}
	b, err := json.Marshal(idx)
	if err != nil {
		return nil, fmt.Errorf("encode index.json: %w", err)
	}
	return b, nil
}

// LayoutFile returns the content of the oci-layout file.
func LayoutFile() []byte {
	b, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	return b
}
