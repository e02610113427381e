package archive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/lade-build/lade/cache"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// MaxJSONSize bounds every index, manifest and JSON file read into memory.
const MaxJSONSize = 16 << 20

// maxDepth bounds index nesting.
const maxDepth = 16

// Blob is one node of an image's blob graph.
type Blob struct {
	// Desc describes the blob.
	Desc ocispec.Descriptor
	// Data holds the verified bytes of an index or manifest; it is nil for
	// blobs (configs, layers, unknown artifacts) streamed from the provider.
	Data []byte
	// Children are the descriptors the blob references (none for a leaf).
	Children []ocispec.Descriptor
	// Height is 0 for a leaf and 1 + the highest child otherwise: writing
	// blobs in increasing Height writes children before their parents.
	Height int
}

// Image is one image manifest found in a graph.
type Image struct {
	// Manifest describes the manifest; Manifest.Platform is the platform
	// the parent index gives (nil for a root manifest).
	Manifest ocispec.Descriptor
	// Config describes the image config.
	Config ocispec.Descriptor
	// Layers describe the layers, bottom first.
	Layers []ocispec.Descriptor
}

// Graph is everything a root descriptor references.
type Graph struct {
	// Root is the descriptor the graph was walked from.
	Root ocispec.Descriptor
	// Blobs lists every blob once, children before parents (post-order).
	Blobs []Blob
	// Images lists the image manifests in index order, each once.
	Images []Image
}

// Walk reads root and, recursively, every index and manifest it references
// from p, verifying each one's size and digest. Configs, layers and
// artifacts of unknown media type are leaves and are not read.
func Walk(ctx context.Context, p content.Provider, root ocispec.Descriptor) (*Graph, error) {
	w := walker{p: p, seen: make(map[digest.Digest]int), g: &Graph{Root: root}}
	if _, err := w.visit(ctx, root, 0); err != nil {
		return nil, err
	}
	return w.g, nil
}

type walker struct {
	p    content.Provider
	seen map[digest.Digest]int
	g    *Graph
}

// visit adds desc and what it references to the graph and returns its height.
func (w *walker) visit(ctx context.Context, desc ocispec.Descriptor, depth int) (int, error) {
	if err := desc.Digest.Validate(); err != nil {
		return 0, fmt.Errorf("descriptor %q: %w", desc.Digest, err)
	}
	if h, ok := w.seen[desc.Digest]; ok {
		return h, nil
	}
	if depth > maxDepth {
		return 0, fmt.Errorf("index %s: nested more than %d levels", desc.Digest, maxDepth)
	}
	mt := desc.MediaType
	if !IsIndex(mt) && !IsManifest(mt) {
		if mt == MediaTypeDockerSchema1 {
			return 0, fmt.Errorf("manifest %s: Docker schema 1 is not supported", desc.Digest)
		}
		return w.add(Blob{Desc: desc}), nil
	}
	data, err := ReadVerified(ctx, w.p, desc)
	if err != nil {
		return 0, err
	}
	children, err := parseChildren(desc, data)
	if err != nil {
		return 0, err
	}
	height := 0
	for _, c := range children {
		h := 0
		if IsIndex(mt) {
			if h, err = w.visit(ctx, c, depth+1); err != nil {
				return 0, err
			}
		} else if err := c.Digest.Validate(); err != nil {
			return 0, fmt.Errorf("manifest %s: child %q: %w", desc.Digest, c.Digest, err)
		} else if _, ok := w.seen[c.Digest]; !ok {
			w.add(Blob{Desc: c})
		}
		height = max(height, h+1)
	}
	if IsManifest(mt) {
		w.g.Images = append(w.g.Images, Image{Manifest: desc, Config: children[0], Layers: children[1:]})
	}
	return w.add(Blob{Desc: desc, Data: data, Children: children, Height: height}), nil
}

// add appends b to the graph, marks it seen and returns its height.
func (w *walker) add(b Blob) int {
	w.seen[b.Desc.Digest] = b.Height
	w.g.Blobs = append(w.g.Blobs, b)
	return b.Height
}

// parseChildren decodes an index or manifest and returns what it references:
// an index's manifests, or a manifest's config followed by its layers.
func parseChildren(desc ocispec.Descriptor, data []byte) ([]ocispec.Descriptor, error) {
	var doc struct {
		MediaType string               `json:"mediaType"`
		Manifests []ocispec.Descriptor `json:"manifests"`
		Config    *ocispec.Descriptor  `json:"config"`
		Layers    []ocispec.Descriptor `json:"layers"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("decode %s %s: %w", desc.MediaType, desc.Digest, err)
	}
	if doc.MediaType != "" && doc.MediaType != desc.MediaType {
		return nil, fmt.Errorf("%s: document says media type %s, its descriptor %s", desc.Digest, doc.MediaType, desc.MediaType)
	}
	if IsIndex(desc.MediaType) {
		return doc.Manifests, nil
	}
	if doc.Config == nil {
		return nil, fmt.Errorf("manifest %s has no config", desc.Digest)
	}
	return append([]ocispec.Descriptor{*doc.Config}, doc.Layers...), nil
}

// ReadVerified reads a whole blob (at most MaxJSONSize bytes) from p and
// checks its size and digest. Errors wrap cache.ErrSizeMismatch or
// cache.ErrDigestMismatch when the content is wrong.
func ReadVerified(ctx context.Context, p content.Provider, desc ocispec.Descriptor) ([]byte, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("descriptor %q: %w", desc.Digest, err)
	}
	if desc.Size < 0 || desc.Size > MaxJSONSize {
		return nil, fmt.Errorf("blob %s: size %d is outside 0..%d", desc.Digest, desc.Size, MaxJSONSize)
	}
	ra, err := p.ReaderAt(ctx, desc)
	if err != nil {
		return nil, fmt.Errorf("open blob %s: %w", desc.Digest, err)
	}
	defer ra.Close()
	if ra.Size() != desc.Size {
		return nil, fmt.Errorf("blob %s: found %d bytes, want %d: %w", desc.Digest, ra.Size(), desc.Size, cache.ErrSizeMismatch)
	}
	data := make([]byte, desc.Size)
	if n, err := ra.ReadAt(data, 0); n != len(data) {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("read blob %s: got %d of %d bytes: %w", desc.Digest, n, desc.Size, err)
	}
	if got := desc.Digest.Algorithm().FromBytes(data); got != desc.Digest {
		return nil, fmt.Errorf("blob %s: read content with digest %s: %w", desc.Digest, got, cache.ErrDigestMismatch)
	}
	return data, nil
}

// ReadJSON reads a small blob through ReadVerified and decodes its JSON
// into v.
func ReadJSON(ctx context.Context, p content.Provider, desc ocispec.Descriptor, v any) error {
	data, err := ReadVerified(ctx, p, desc)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decode blob %s: %w", desc.Digest, err)
	}
	return nil
}

// BlobPath is the slash-separated path of a blob inside a layout:
// blobs/<algorithm>/<encoded>.
func BlobPath(d digest.Digest) string {
	return ocispec.ImageBlobsDir + "/" + d.Algorithm().String() + "/" + d.Encoded()
}
