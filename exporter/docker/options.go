// Package docker writes images as `docker load`-able tar archives and
// imports images from `docker save` archives.
//
// An archive written here is what `docker save` writes since Docker 25: a
// manifest.json (read by docker load's classic image store and by skopeo's
// docker-archive transport) and, beside it, a full OCI image layout
// (oci-layout, index.json, blobs/sha256/...) read by docker load with the
// containerd image store, containerd, skopeo's oci-archive transport and
// umoci. Content comes from a containerd content.Provider and a root
// descriptor (index, manifest list or single manifest; OCI or Docker
// media types, written as given, never converted). Layer blobs are written
// as they are (compressed): docker load decompresses gzip and zstd layers.
package docker

import (
	"fmt"
	"time"

	"github.com/lade-build/lade/exporter/archive"
	"github.com/lade-build/lade/progress"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Options control WriteArchive. The zero value writes an untagged archive
// whose tags would go to the host platform's manifest.
type Options struct {
	// Names are image references ("foo", "foo:1", "reg:5000/x/foo:1"). A
	// missing tag is "latest". They become the RepoTags (familiar form,
	// e.g. "foo:latest") of one manifest.json entry and index.json entries
	// annotated with the full name and the tag.
	Names []string
	// Platform chooses the manifest.json entry that carries RepoTags when
	// the root holds several platforms: the best match for it, or the
	// first entry when none matches. Nil means the host platform.
	Platform *ocispec.Platform
	// Created, when set, adds the org.opencontainers.image.created
	// annotation to the index.json entries.
	Created *time.Time
	// Epoch, when set, is the modification time of every tar entry
	// (SOURCE_DATE_EPOCH); otherwise entries carry the Unix epoch.
	Epoch *time.Time
	// Progress receives one vertex per blob; nil discards events.
	Progress progress.Writer
}

// Validate checks the options on their own.
func (o Options) Validate() error {
	if _, err := archive.ParseNames(o.Names); err != nil {
		return err
	}
	if o.Epoch != nil && o.Epoch.Unix() < 0 {
		return fmt.Errorf("epoch %d is before 1970", o.Epoch.Unix())
	}
	return nil
}

// mtime is the modification time of tar entries.
func (o Options) mtime() time.Time {
	if o.Epoch != nil {
		return *o.Epoch
	}
	return time.Unix(0, 0)
}
