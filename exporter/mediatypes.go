package exporter

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/platforms"
	"github.com/lade-build/lade/blobs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// mediaTypes is the set of media types of one output flavour.
type mediaTypes struct {
	manifest, config, index string
}

func mediaTypesFor(docker bool) mediaTypes {
	if docker {
		return mediaTypes{images.MediaTypeDockerSchema2Manifest, images.MediaTypeDockerSchema2Config, images.MediaTypeDockerSchema2ManifestList}
	}
	return mediaTypes{ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageConfig, ocispec.MediaTypeImageIndex}
}

// convertLayerMediaType maps a layer media type onto the output flavour;
// the blob bytes stay the same.
func convertLayerMediaType(mt string, docker bool) (string, error) {
	t, err := blobs.TypeOfMediaType(mt)
	if err != nil {
		return "", err
	}
	nondist := strings.Contains(mt, "nondistributable") || strings.Contains(mt, "foreign")
	if nondist {
		return mt, nil
	}
	return blobs.Compression{Type: t}.MediaType(docker)
}

// internalAnnotationPrefixes are layer annotations that never reach a
// manifest.
var internalAnnotationPrefixes = []string{"containerd.io/", "buildkit/", "lade.dev/"}

// publicAnnotationPrefixes are annotations public although under an
// internal prefix, as BuildKit keeps them: eStargz's TOC digest, which
// lazy-pulling snapshotters read from the manifest, and BuildKit's mark of
// a layer whose file times were clamped to SOURCE_DATE_EPOCH.
var publicAnnotationPrefixes = []string{"containerd.io/snapshot/stargz/", "buildkit/rewritten-timestamp"}

// publicAnnotations drops internal layer annotations; nil when none is left.
func publicAnnotations(m map[string]string) map[string]string {
	var out map[string]string
	for k, v := range m {
		if hasPrefix(k, internalAnnotationPrefixes) && !hasPrefix(k, publicAnnotationPrefixes) {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[k] = v
	}
	return out
}

// hasPrefix reports whether s starts with one of prefixes.
func hasPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// annotationsFor merges the annotations for every platform ("") with the
// ones for platform (normalized).
func annotationsFor(m map[string]map[string]string, platform string) map[string]string {
	out := copyMap(m[""])
	for k, v := range m[platform] {
		out = setKey(out, k, v)
	}
	return out
}

func copyMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// normalizeAnnotations checks annotation targets against the source and
// returns the annotations with platform keys normalized (linux/x86_64 and
// linux/amd64 name one platform).
func normalizeAnnotations(src Source, opts Options) (Annotations, error) {
	a := src.Annotations
	index := len(src.Platforms) > 1 || opts.Index
	hasIndexAnn := len(a.Index) > 0 || len(a.IndexDescriptor) > 0
	if hasIndexAnn && !index {
		return a, errors.New("index annotations given for a single-platform image: ask for an index (index=true) or use manifest annotations")
	}
	if hasIndexAnn && opts.Docker {
		return a, errors.New("index annotations need OCI media types: Docker manifest lists have no annotations")
	}
	// Manifest annotations are written into Docker manifests too, as
	// BuildKit does; descriptor annotations have no place in a Docker
	// manifest list.
	if opts.Docker && len(a.ManifestDescriptor) > 0 {
		return a, errors.New("manifest-descriptor annotations need OCI media types: set oci-mediatypes=true")
	}
	known := map[string]bool{}
	for _, p := range src.Platforms {
		if pp, err := ParsePlatform(p.Platform); err == nil {
			known[platforms.Format(pp)] = true
		}
	}
	norm := func(m map[string]map[string]string) (map[string]map[string]string, error) {
		out := map[string]map[string]string{}
		for p, kv := range m {
			key := ""
			if p != "" {
				pp, err := ParsePlatform(p)
				if err != nil {
					return nil, fmt.Errorf("annotation: %w", err)
				}
				if key = platforms.Format(pp); !known[key] {
					return nil, fmt.Errorf("annotation for platform %q, which is not exported", p)
				}
			}
			for k, v := range kv {
				out[key] = setKey(out[key], k, v)
			}
		}
		return out, nil
	}
	var err error
	if a.Manifest, err = norm(a.Manifest); err != nil {
		return a, err
	}
	a.ManifestDescriptor, err = norm(a.ManifestDescriptor)
	return a, err
}

func setKey(m map[string]string, k, v string) map[string]string {
	if m == nil {
		m = map[string]string{}
	}
	m[k] = v
	return m
}

// emptyLayerGzip returns an empty tar gzipped by Go's compress/gzip, the
// bytes Docker and BuildKit use (sha256:4f4fb700ef54…). It is made on
// first use: the gzip writer takes 800 KB that every lade-buildkitd would
// otherwise allocate at start (issue #17, peak RSS).
var emptyLayerGzip = sync.OnceValue(func() []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(make([]byte, 1024))
	_ = zw.Close()
	return buf.Bytes()
})

// writeEmptyLayer writes the empty gzip layer and returns its descriptor.
func writeEmptyLayer(ctx context.Context, store Store, docker bool) (ocispec.Descriptor, error) {
	mt, _ := blobs.Compression{Type: blobs.Gzip}.MediaType(docker)
	d := ocispec.Descriptor{
		MediaType: mt, Digest: digest.FromBytes(emptyLayerGzip()), Size: int64(len(emptyLayerGzip())),
		Annotations: map[string]string{blobs.LabelUncompressed: blobs.EmptyTarDiffID.String()},
	}
	labels := map[string]string{blobs.LabelUncompressed: blobs.EmptyTarDiffID.String()}
	if err := content.WriteBlob(ctx, store, "lade-empty-layer", bytes.NewReader(emptyLayerGzip()), d, content.WithLabels(labels)); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("write empty layer: %w", err)
	}
	return d, nil
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
