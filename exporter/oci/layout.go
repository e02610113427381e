package oci

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/lade-build/lade/exporter/archive"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// WriteLayout writes root and everything it references into the OCI image
// layout directory dir, creating it if needed or extending it if it already
// is a layout (a directory with an oci-layout file). A directory that is
// neither empty nor a layout is refused.
//
// Blobs are written children first (concurrently within one level), each
// through a temporary file in the same directory that is renamed into
// place only once its size and digest were verified, so no partial file
// ever bears a digest name. Blobs already present whose content hashes to
// their name are kept; corrupt ones are replaced. index.json is written
// last, atomically: entries of opts.Names replace existing entries with the
// same ref name (tag), other entries are kept.
//
// Concurrent writers to one directory are not coordinated: the last
// index.json written wins.
func WriteLayout(ctx context.Context, provider content.Provider, root ocispec.Descriptor, dir string, opts Options) error {
	if err := opts.Validate(); err != nil {
		return err
	}
	names, err := opts.names()
	if err != nil {
		return err
	}
	g, err := archive.Walk(ctx, provider, root)
	if err != nil {
		return fmt.Errorf("oci layout %s: %w", dir, err)
	}
	existing, isLayout, err := prepareDir(dir)
	if err != nil {
		return err
	}
	if !isLayout {
		if err := writeFileAtomic(dir, ocispec.ImageLayoutFile, archive.LayoutFile()); err != nil {
			return err
		}
	}
	err = archive.ForEachLevel(ctx, g.Blobs, func(ctx context.Context, b archive.Blob) error {
		return writeBlob(ctx, provider, b, dir, opts)
	})
	if err != nil {
		return fmt.Errorf("oci layout %s: %w", dir, err)
	}
	existing.Manifests = archive.MergeIndex(existing.Manifests, archive.IndexEntries(root, names, opts.Created))
	existing.SchemaVersion = 2
	existing.MediaType = ocispec.MediaTypeImageIndex
	data, err := json.Marshal(existing)
	if err != nil {
		return fmt.Errorf("encode index.json: %w", err)
	}
	if err := writeFileAtomic(dir, ocispec.ImageIndexFile, data); err != nil {
		return err
	}
	return syncDir(dir)
}

// prepareDir makes sure dir can hold a layout: it creates a missing dir,
// accepts an empty one and reads the index.json of an existing layout.
func prepareDir(dir string) (ocispec.Index, bool, error) {
	var idx ocispec.Index
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return idx, false, mkdir(dir)
	}
	if err != nil {
		return idx, false, fmt.Errorf("oci layout: %w", err)
	}
	if !fi.IsDir() {
		return idx, false, fmt.Errorf("oci layout %s: not a directory", dir)
	}
	if _, err := os.Lstat(filepath.Join(dir, ocispec.ImageLayoutFile)); errors.Is(err, fs.ErrNotExist) {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return idx, false, fmt.Errorf("oci layout: %w", err)
		}
		if len(entries) > 0 {
			return idx, false, fmt.Errorf("oci layout %s: the directory is not empty and is not an OCI layout (no %s file): refusing to write into it", dir, ocispec.ImageLayoutFile)
		}
		return idx, false, nil
	}
	l, err := archive.OpenDir(dir)
	if err != nil {
		return idx, false, err
	}
	defer l.Close()
	if err := archive.CheckLayout(l); err != nil {
		return idx, false, wrapDir(dir, err)
	}
	if _, err := l.ReadFile(ocispec.ImageIndexFile); errors.Is(err, fs.ErrNotExist) {
		return idx, true, nil
	}
	idx, err = archive.ReadIndex(l)
	return idx, true, wrapDir(dir, err)
}

// wrapDir prefixes a non-nil error with the layout directory.
func wrapDir(dir string, err error) error {
	if err != nil {
		return fmt.Errorf("oci layout %s: %w", dir, err)
	}
	return nil
}

// mkdir creates a new layout directory.
func mkdir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("oci layout: %w", err)
	}
	return nil
}
