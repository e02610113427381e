// Package oci writes images as OCI image layouts, either a directory
// (WriteLayout) or a tar stream of one (WriteTar), and imports images from
// them (ReadLayout, ReadTar).
//
// Content comes from a containerd content.Provider and a root descriptor: an
// OCI index or Docker manifest list, or a single manifest, with OCI or
// Docker schema 2 media types, written as given. Every blob is verified
// (size and digest) while it is copied, blobs are written children first and
// each once, and names become index.json entries annotated with
// org.opencontainers.image.ref.name (the tag, what `skopeo oci:DIR:TAG` and
// `umoci --image DIR:TAG` look up) and io.containerd.image.name (the full
// name, what containerd and docker load read).
package oci

import (
	"fmt"
	"time"

	"github.com/lade-build/lade/exporter/archive"
	"github.com/lade-build/lade/progress"
)

// Options control WriteLayout and WriteTar. The zero value writes one
// unnamed index.json entry.
type Options struct {
	// Names are image references ("foo", "foo:1", "reg:5000/x/foo:1"); each
	// becomes an index.json entry. A missing tag is "latest". Two names
	// may not share a tag unless SharedTags is set: an OCI layout finds
	// images by tag alone.
	Names []string
	// SharedTags lets names share a tag, each with its own entry, as
	// BuildKit's oci exporter writes them (buildx -t a:1 -t b:1 -o
	// type=oci; docker load and containerd then create both names). All
	// entries name the same image, but umoci refuses such a tag as
	// ambiguous.
	SharedTags bool
	// Created, when set, adds the org.opencontainers.image.created
	// annotation to the index.json entries written.
	Created *time.Time
	// Epoch, when set, is the modification time of every WriteTar entry
	// (SOURCE_DATE_EPOCH); otherwise entries carry the Unix epoch.
	Epoch *time.Time
	// Progress receives one vertex per blob; nil discards events.
	Progress progress.Writer
}

// Validate checks the options on their own.
func (o Options) Validate() error {
	_, err := o.names()
	if err == nil && o.Epoch != nil && o.Epoch.Unix() < 0 {
		err = fmt.Errorf("epoch %d is before 1970", o.Epoch.Unix())
	}
	return err
}

// names parses Names and, unless SharedTags, rejects two names with one
// tag.
func (o Options) names() ([]archive.Name, error) {
	names, err := archive.ParseNames(o.Names)
	if err != nil || o.SharedTags {
		return names, err
	}
	byTag := map[string]string{}
	for _, n := range names {
		if other, ok := byTag[n.Tag]; ok {
			return nil, fmt.Errorf("names %s and %s share the tag %q: an OCI layout tells images apart by tag only", other, n.Familiar, n.Tag)
		}
		byTag[n.Tag] = n.Familiar
	}
	return names, nil
}

// mtime is the modification time of tar entries.
func (o Options) mtime() time.Time {
	if o.Epoch != nil {
		return *o.Epoch
	}
	return time.Unix(0, 0)
}
