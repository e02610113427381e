package oci

import (
	"context"
	"fmt"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/lade-build/lade/exporter/archive"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ReadLayout imports the image ref names from the OCI layout directory dir
// into ingester and returns its root descriptor (without the name
// annotations). ref is a tag (the entry's org.opencontainers.image.ref.name)
// or an image name matched against io.containerd.image.name ("foo" matches
// docker.io/library/foo:latest); "" selects the layout's only image.
// Blobs are written children first and each is verified before commit;
// indexes and manifests carry containerd GC labels for their children. No
// name can reach outside dir.
func ReadLayout(ctx context.Context, dir, ref string, ingester content.Ingester) (ocispec.Descriptor, error) {
	l, err := archive.OpenDir(dir)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	defer l.Close()
	desc, err := read(ctx, l, ref, ingester)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("import OCI layout %s: %w", dir, err)
	}
	return desc, nil
}

// ReadTar is ReadLayout for an OCI layout tar file (an oci-archive) at
// path. The archive is read in place, without extracting it; an entry with
// an absolute name or a ".." element fails the import, and only regular
// files are read.
func ReadTar(ctx context.Context, path, ref string, ingester content.Ingester) (ocispec.Descriptor, error) {
	t, err := archive.OpenTar(path)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	defer t.Close()
	desc, err := read(ctx, t, ref, ingester)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("import OCI archive %s: %w", path, err)
	}
	return desc, nil
}

// read imports the image ref names from layout l.
func read(ctx context.Context, l archive.Layout, ref string, ingester content.Ingester) (ocispec.Descriptor, error) {
	idx, err := archive.ReadIndex(l)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc, err := archive.SelectManifest(idx, ref)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if err := archive.Import(ctx, l, desc, ingester); err != nil {
		return ocispec.Descriptor{}, err
	}
	return desc, nil
}
