package archive

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/distribution/reference"
	"github.com/lade-build/lade/cache"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// CheckLayout checks l's oci-layout file: it must exist and name layout
// version 1.0.0.
func CheckLayout(l Layout) error {
	b, err := l.ReadFile(ocispec.ImageLayoutFile)
	if err != nil {
		return fmt.Errorf("not an OCI layout: %w", err)
	}
	var lay ocispec.ImageLayout
	if err := json.Unmarshal(b, &lay); err != nil {
		return fmt.Errorf("decode %s: %w", ocispec.ImageLayoutFile, err)
	}
	if lay.Version != ocispec.ImageLayoutVersion {
		return fmt.Errorf("OCI layout version %q is not supported (want %s)", lay.Version, ocispec.ImageLayoutVersion)
	}
	return nil
}

// ReadIndex checks l's oci-layout file and returns its index.json.
func ReadIndex(l Layout) (ocispec.Index, error) {
	var idx ocispec.Index
	if err := CheckLayout(l); err != nil {
		return idx, err
	}
	b, err := l.ReadFile(ocispec.ImageIndexFile)
	if err != nil {
		return idx, fmt.Errorf("read OCI layout index: %w", err)
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return idx, fmt.Errorf("decode %s: %w", ocispec.ImageIndexFile, err)
	}
	return idx, nil
}

// SelectManifest picks the index.json entry that ref names. An empty ref
// selects the only image of the index. Otherwise ref matches an entry whose
// org.opencontainers.image.ref.name equals it, or whose
// io.containerd.image.name equals it or its normalized form ("foo" matches
// "docker.io/library/foo:latest"). Several entries with the same digest are
// one image; different digests make ref ambiguous. The descriptor returned
// has those two name annotations removed.
func SelectManifest(idx ocispec.Index, ref string) (ocispec.Descriptor, error) {
	full := ""
	if n, err := ParseName(ref); err == nil {
		full = n.Full
	}
	var found []ocispec.Descriptor
	for _, d := range idx.Manifests {
		rn, in := d.Annotations[ocispec.AnnotationRefName], d.Annotations[AnnotationImageName]
		if ref == "" || rn == ref || (in != "" && (in == ref || in == full)) {
			found = append(found, d)
		}
	}
	distinct := map[string]bool{}
	for _, d := range found {
		distinct[d.Digest.String()] = true
	}
	switch {
	case len(found) == 0 && ref == "":
		return ocispec.Descriptor{}, fmt.Errorf("index.json lists no image")
	case len(found) == 0:
		return ocispec.Descriptor{}, fmt.Errorf("no image named %q in index.json (names: %s)", ref, indexNames(idx))
	case len(distinct) > 1 && ref == "":
		return ocispec.Descriptor{}, fmt.Errorf("index.json lists %d images (names: %s): choose one by name", len(distinct), indexNames(idx))
	case len(distinct) > 1:
		return ocispec.Descriptor{}, fmt.Errorf("name %q is ambiguous: it matches %d different images in index.json", ref, len(distinct))
	}
	d := found[0]
	d.Annotations = nil
	for k, v := range found[0].Annotations {
		if k != ocispec.AnnotationRefName && k != AnnotationImageName {
			if d.Annotations == nil {
				d.Annotations = map[string]string{}
			}
			d.Annotations[k] = v
		}
	}
	return d, nil
}

// indexNames lists the names of an index's entries for error messages.
func indexNames(idx ocispec.Index) string {
	var names []string
	for _, d := range idx.Manifests {
		n := d.Annotations[AnnotationImageName]
		if n == "" {
			n = d.Annotations[ocispec.AnnotationRefName]
		}
		if n == "" {
			n = "<unnamed " + d.Digest.String() + ">"
		}
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// NormalizeRef returns the normalized full form of a docker-style name
// ("foo" gives "docker.io/library/foo:latest"), or "" when it is not one.
func NormalizeRef(ref string) string {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return ""
	}
	return reference.TagNameOnly(named).String()
}

// Import copies desc and everything it references from p into ing, children
// first, each blob once. Every blob is verified before it is committed:
// indexes and manifests as they are read, the rest by content.WriteBlob with
// the expected digest and size. Indexes and manifests are committed with
// containerd GC labels naming their children, so a metadata store keeps the
// children alive through its parent.
func Import(ctx context.Context, p content.Provider, desc ocispec.Descriptor, ing content.Ingester) error {
	g, err := Walk(ctx, p, desc)
	if err != nil {
		return err
	}
	return ForEachLevel(ctx, g.Blobs, func(ctx context.Context, b Blob) error {
		ref := "lade-import-" + b.Desc.Digest.String()
		if b.Data != nil {
			err := content.WriteBlob(ctx, ing, ref, bytes.NewReader(b.Data), b.Desc, content.WithLabels(GCLabels(b.Children)))
			if err != nil {
				return fmt.Errorf("import %s %s: %w", Kind(b.Desc.MediaType), b.Desc.Digest, err)
			}
			return nil
		}
		ra, err := p.ReaderAt(ctx, b.Desc)
		if err != nil {
			return fmt.Errorf("import %s %s: %w", Kind(b.Desc.MediaType), b.Desc.Digest, err)
		}
		defer ra.Close()
		if ra.Size() != b.Desc.Size {
			return fmt.Errorf("import %s %s: found %d bytes, want %d: %w", Kind(b.Desc.MediaType), b.Desc.Digest, ra.Size(), b.Desc.Size, cache.ErrSizeMismatch)
		}
		if err := content.WriteBlob(ctx, ing, ref, content.NewReader(ra), b.Desc); err != nil {
			return fmt.Errorf("import %s %s: %w", Kind(b.Desc.MediaType), b.Desc.Digest, err)
		}
		return nil
	})
}

// GCLabels returns the containerd GC labels by which a parent references
// children: containerd.io/gc.ref.content.config for a config,
// containerd.io/gc.ref.content.l.<i> for layers, .m.<i> for manifests.
func GCLabels(children []ocispec.Descriptor) map[string]string {
	if len(children) == 0 {
		return nil
	}
	labels := make(map[string]string, len(children))
	for i, c := range children {
		key := childGCLabel(c.MediaType)
		if strings.HasSuffix(key, ".") {
			key += strconv.Itoa(i)
		}
		labels[key] = c.Digest.String()
	}
	return labels
}
