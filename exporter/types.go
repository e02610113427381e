// Package exporter is lade's ImageWriter: it turns a Source (refs per
// platform, image configs, annotations) into configs, manifests and an index
// in a content store. It computes diff pairs through package blobs,
// normalizes history against the layers (dropping empty layers), patches the
// config and writes every object with containerd GC labels.
//
// Destinations (a local image store, OCI layouts, docker archives, a
// registry) live in the sub-packages and consume the root descriptor.
package exporter

import (
	"time"

	"github.com/lade-build/lade/blobs"
	"github.com/lade-build/lade/cache"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Source is what an export turns into an image.
type Source struct {
	// Platforms holds one entry per platform, in output order. A single
	// entry with an empty Platform exports the host platform as a single
	// manifest (unless Options.Index is set).
	Platforms []PlatformSource
	// Annotations to set at each level.
	Annotations Annotations
}

// PlatformSource is one platform of a Source.
type PlatformSource struct {
	// Platform is an OS/arch[/variant] string such as "linux/arm64"; empty
	// means the host platform.
	Platform string
	// Ref is the top of the layer chain; nil gives an image with no layers
	// of its own (only the base's, if any).
	Ref cache.Ref
	// Config is the image config JSON; nil gives the default config
	// (WorkingDir "/", PATH env, the platform's os/arch).
	Config []byte
	// BaseHistory is the number of leading history entries that belong to a
	// base image: they are kept as they are (never clamped to the epoch).
	BaseHistory int
	// BaseLayers is the number of layers at the bottom of Ref's chain that
	// are a base image's: they are kept as they are, empty ones too, so
	// that base and derived images share their diffIDs. Only new empty
	// layers are dropped.
	BaseLayers int
	// Epoch is this platform's SOURCE_DATE_EPOCH (a frontend may give each
	// platform its own); nil takes Options.Epoch. It clamps this
	// platform's config and history times and, with
	// Options.RewriteTimestamp, its new layers' file times.
	Epoch *time.Time
}

// Annotations to add at each level of the output. Keys of the per-platform
// maps are platform strings as given in PlatformSource.Platform, or "" for
// every platform.
type Annotations struct {
	Manifest           map[string]map[string]string
	ManifestDescriptor map[string]map[string]string
	Index              map[string]string
	IndexDescriptor    map[string]string
}

// LayerResult is the per-layer metadata of an export.
type LayerResult struct {
	DiffID      digest.Digest `json:"diffID"`
	Digest      digest.Digest `json:"digest"`
	Size        int64         `json:"size"`
	MediaType   string        `json:"mediaType"`
	Compression blobs.Type    `json:"compression"`
	// Status is new, reused or converted.
	Status blobs.Status `json:"status"`
	// Dropped is true for an empty layer left out of the manifest.
	Dropped bool `json:"dropped,omitempty"`
	// EpochApplied is true when timestamps were clamped to the epoch.
	EpochApplied bool `json:"epochApplied,omitempty"`
	// RefID identifies the ref the layer came from.
	RefID string `json:"refID,omitempty"`
	// Ztoc is the digest of the layer's zTOC (soci=true), ZtocSpans its
	// span count.
	Ztoc      digest.Digest `json:"ztoc,omitempty"`
	ZtocSpans int           `json:"ztocSpans,omitempty"`
}

// PlatformResult is the result for one platform.
type PlatformResult struct {
	Platform ocispec.Platform   `json:"platform"`
	Manifest ocispec.Descriptor `json:"manifest"`
	Config   ocispec.Descriptor `json:"config"`
	Layers   []LayerResult      `json:"layers"`
	// Repairs lists every change made to the given history.
	Repairs []string `json:"repairs,omitempty"`
	// SociIndex is the platform's SOCI index as listed in the image index
	// (soci=true and a layer with a zTOC).
	SociIndex *ocispec.Descriptor `json:"sociIndex,omitempty"`
}

// Result is what Commit returns.
type Result struct {
	// Descriptor is the root: the index, or the manifest for a single
	// platform exported without an index.
	Descriptor ocispec.Descriptor `json:"descriptor"`
	Platforms  []PlatformResult   `json:"platforms"`
	// Created is the time used for the image (epoch when set).
	Created time.Time `json:"created"`
}
