// Package manifest edits manifest lists, buildah-style: an OCI image index
// or a Docker manifest list whose instances are images already in a content
// store. A List is created empty or read from the store, instances are added
// (their platform read from each image's config when the caller gives none),
// removed and annotated, and the list is written back with containerd GC
// labels so that naming it keeps every instance alive.
//
// Compression variants (buildah's --add-compression) are new manifests of
// the same config whose layers are recompressed; see Variant.
//
// The package does not import BuildKit.
package manifestlist

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	"github.com/lade-build/lade/exporter/archive"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Format is the kind of list.
type Format string

// The list formats.
const (
	// OCI is an OCI image index: instances may carry annotations and be
	// OCI or Docker manifests.
	OCI Format = "oci"
	// Docker is a Docker manifest list: instances are Docker schema 2
	// manifests and carry no annotations.
	Docker Format = "docker"
)

// ParseFormat parses "oci" or "docker" ("v2s2" is accepted for Docker, as
// buildah names it).
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "oci":
		return OCI, nil
	case "docker", "v2s2":
		return Docker, nil
	}
	return "", fmt.Errorf("unknown list format %q: use oci or docker", s)
}

// MediaType returns the list's media type.
func (f Format) MediaType() string {
	if f == Docker {
		return archive.MediaTypeDockerManifestList
	}
	return ocispec.MediaTypeImageIndex
}

// List is a manifest list being edited. It is not safe for concurrent use.
type List struct {
	index ocispec.Index
}

// New returns an empty list of format f.
func New(f Format) *List {
	l := &List{index: ocispec.Index{MediaType: f.MediaType(), Manifests: []ocispec.Descriptor{}}}
	l.index.SchemaVersion = 2
	return l
}

// Read reads the list rooted at desc from p, verifying its digest. desc
// must be an OCI index or a Docker manifest list (errdefs.ErrInvalidArgument
// otherwise).
func Read(ctx context.Context, p content.Provider, desc ocispec.Descriptor) (*List, error) {
	if !archive.IsIndex(desc.MediaType) {
		return nil, fmt.Errorf("%s is a %s, not a manifest list: %w", desc.Digest, archive.Kind(desc.MediaType), errdefs.ErrInvalidArgument)
	}
	b, err := archive.ReadVerified(ctx, p, desc)
	if err != nil {
		return nil, fmt.Errorf("read list: %w", err)
	}
	l := &List{}
	if err := json.Unmarshal(b, &l.index); err != nil {
		return nil, fmt.Errorf("decode list %s: %w", desc.Digest, err)
	}
	l.index.MediaType = desc.MediaType
	if l.index.Manifests == nil {
		l.index.Manifests = []ocispec.Descriptor{}
	}
	return l, nil
}

// Format returns the list's format.
func (l *List) Format() Format {
	if l.index.MediaType == archive.MediaTypeDockerManifestList {
		return Docker
	}
	return OCI
}

// Index returns a copy of the list as an index.
func (l *List) Index() ocispec.Index {
	idx := l.index
	idx.Manifests = slices.Clone(l.index.Manifests)
	idx.Annotations = maps.Clone(l.index.Annotations)
	return idx
}

// Instances returns a copy of the instance descriptors, in list order.
func (l *List) Instances() []ocispec.Descriptor { return slices.Clone(l.index.Manifests) }

// Add appends inst, or replaces the instance with the same digest in
// place. inst must be an image manifest with a platform; a Docker list
// takes only Docker manifests without annotations (see ToDocker).
func (l *List) Add(inst ocispec.Descriptor) error {
	if !archive.IsManifest(inst.MediaType) {
		return fmt.Errorf("instance %s is a %s: a list holds image manifests: %w", inst.Digest, archive.Kind(inst.MediaType), errdefs.ErrInvalidArgument)
	}
	if inst.Platform == nil || inst.Platform.OS == "" || inst.Platform.Architecture == "" {
		return fmt.Errorf("instance %s has no platform: give os and architecture: %w", inst.Digest, errdefs.ErrInvalidArgument)
	}
	if l.Format() == Docker {
		if inst.MediaType != archive.MediaTypeDockerManifest {
			return fmt.Errorf("instance %s is an OCI manifest: a Docker manifest list takes Docker manifests (convert it, or use an OCI list): %w", inst.Digest, errdefs.ErrInvalidArgument)
		}
		if len(inst.Annotations) > 0 {
			return fmt.Errorf("instance %s has annotations: a Docker manifest list carries none (use an OCI list): %w", inst.Digest, errdefs.ErrInvalidArgument)
		}
	}
	if i := l.find(inst.Digest); i >= 0 {
		l.index.Manifests[i] = inst
		return nil
	}
	l.index.Manifests = append(l.index.Manifests, inst)
	return nil
}

// Remove drops the instance with digest d (errdefs.ErrNotFound when the
// list has none).
func (l *List) Remove(d digest.Digest) error {
	i := l.find(d)
	if i < 0 {
		return fmt.Errorf("list has no instance %s: %w", d, errdefs.ErrNotFound)
	}
	l.index.Manifests = slices.Delete(l.index.Manifests, i, i+1)
	return nil
}

// Lookup returns the instance with digest d (errdefs.ErrNotFound when the
// list has none).
func (l *List) Lookup(d digest.Digest) (ocispec.Descriptor, error) {
	i := l.find(d)
	if i < 0 {
		return ocispec.Descriptor{}, fmt.Errorf("list has no instance %s: %w", d, errdefs.ErrNotFound)
	}
	return l.index.Manifests[i], nil
}

// Edit is what Annotate changes on an instance.
type Edit struct {
	// Annotations are set (an empty value is kept as an empty string).
	Annotations map[string]string
	// Platform, when set, replaces the instance's platform.
	Platform *ocispec.Platform
}

// Annotate applies e to the instance with digest d. Annotations need an
// OCI list (errdefs.ErrInvalidArgument on a Docker one).
func (l *List) Annotate(d digest.Digest, e Edit) error {
	i := l.find(d)
	if i < 0 {
		return fmt.Errorf("list has no instance %s: %w", d, errdefs.ErrNotFound)
	}
	if len(e.Annotations) > 0 && l.Format() == Docker {
		return fmt.Errorf("a Docker manifest list carries no annotations: create the list with format oci: %w", errdefs.ErrInvalidArgument)
	}
	inst := &l.index.Manifests[i]
	if len(e.Annotations) > 0 {
		inst.Annotations = maps.Clone(inst.Annotations)
		if inst.Annotations == nil {
			inst.Annotations = map[string]string{}
		}
		maps.Copy(inst.Annotations, e.Annotations)
	}
	if e.Platform != nil {
		if e.Platform.OS == "" || e.Platform.Architecture == "" {
			return fmt.Errorf("platform of %s: os and architecture are required: %w", d, errdefs.ErrInvalidArgument)
		}
		p := *e.Platform
		inst.Platform = &p
	}
	return nil
}

// AnnotateIndex sets annotations on the list itself (OCI lists only).
func (l *List) AnnotateIndex(ann map[string]string) error {
	if len(ann) == 0 {
		return nil
	}
	if l.Format() == Docker {
		return fmt.Errorf("a Docker manifest list carries no annotations: create the list with format oci: %w", errdefs.ErrInvalidArgument)
	}
	if l.index.Annotations == nil {
		l.index.Annotations = map[string]string{}
	}
	maps.Copy(l.index.Annotations, ann)
	return nil
}

// Bytes returns the list's JSON.
func (l *List) Bytes() ([]byte, error) {
	b, err := json.MarshalIndent(l.index, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("marshal list: %w", err)
	}
	return b, nil
}

// Write writes the list into store with a containerd.io/gc.ref.content.m.<i>
// label per instance and returns its descriptor. Writing the same list
// twice is a no-op. The instances must be in the store already.
func (l *List) Write(ctx context.Context, store content.Ingester) (ocispec.Descriptor, error) {
	b, err := l.Bytes()
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc := ocispec.Descriptor{MediaType: l.index.MediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
	return desc, writeBlob(ctx, store, desc, b, archive.GCLabels(l.index.Manifests))
}

// find returns the index of the instance with digest d, -1 if none.
func (l *List) find(d digest.Digest) int {
	return slices.IndexFunc(l.index.Manifests, func(m ocispec.Descriptor) bool { return m.Digest == d })
}

// writeBlob writes b under desc with labels, idempotently.
func writeBlob(ctx context.Context, store content.Ingester, desc ocispec.Descriptor, b []byte, labels map[string]string) error {
	err := content.WriteBlob(ctx, store, "lade-manifest-"+desc.Digest.Encoded(), bytes.NewReader(b), desc, content.WithLabels(labels))
	if err != nil {
		return fmt.Errorf("write %s %s: %w", archive.Kind(desc.MediaType), desc.Digest, err)
	}
	return nil
}
