package archive

import (
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Docker schema 2 media types, as containerd's core/images names them (that
// package is not imported: it drags in gRPC).
const (
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayer        = "application/vnd.docker.image.rootfs.diff.tar"
	MediaTypeDockerLayerGzip    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerSchema1      = "application/vnd.docker.distribution.manifest.v1+prettyjws"
)

// AnnotationImageName is containerd's annotation holding an index.json
// entry's full image name (io.containerd.image.name).
const AnnotationImageName = "io.containerd.image.name"

// IsIndex reports whether mt is an OCI index or a Docker manifest list.
func IsIndex(mt string) bool {
	return mt == ocispec.MediaTypeImageIndex || mt == MediaTypeDockerManifestList
}

// IsManifest reports whether mt is an OCI or Docker schema 2 image manifest.
func IsManifest(mt string) bool {
	return mt == ocispec.MediaTypeImageManifest || mt == MediaTypeDockerManifest
}

// IsConfig reports whether mt is an OCI or Docker image config.
func IsConfig(mt string) bool {
	return mt == ocispec.MediaTypeImageConfig || mt == MediaTypeDockerConfig
}

// IsLayer reports whether mt is an OCI or Docker layer media type.
func IsLayer(mt string) bool {
	return strings.HasPrefix(mt, "application/vnd.oci.image.layer.") ||
		strings.HasPrefix(mt, "application/vnd.docker.image.rootfs.")
}

// Kind names what a media type describes: index, manifest, config, layer or
// blob.
func Kind(mediaType string) string {
	switch {
	case IsIndex(mediaType):
		return "index"
	case IsManifest(mediaType):
		return "manifest"
	case IsConfig(mediaType):
		return "config"
	case IsLayer(mediaType):
		return "layer"
	}
	return "blob"
}

// childGCLabel is the containerd GC label prefix by which a parent references
// a child of media type mt; prefixes ending in "." take the child's index.
func childGCLabel(mt string) string {
	switch {
	case IsConfig(mt):
		return "containerd.io/gc.ref.content.config"
	case IsManifest(mt):
		return "containerd.io/gc.ref.content.m."
	case IsLayer(mt):
		return "containerd.io/gc.ref.content.l."
	}
	return "containerd.io/gc.ref.content."
}
