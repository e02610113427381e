package docker

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/lade-build/lade/exporter/archive"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ReadArchive imports one image from the docker archive at path (any
// `docker save` output, or what WriteArchive writes) into ingester and
// returns its root descriptor.
//
// ref selects the image: "" for an archive holding a single image, a name
// ("foo" means docker.io/library/foo:latest) matched against index.json
// names and manifest.json RepoTags (the last entry with the tag wins, as in
// docker load), or "@N" for the N-th manifest.json entry (from 0).
//
// An archive with an OCI layout (Docker 25+) is read through index.json,
// so the original index or manifest is imported unchanged. A legacy archive
// (manifest.json with <id>/layer.tar files) gets a synthesized Docker
// schema 2 manifest: each layer's digest is that of the file as stored, its
// media type sniffed (gzip, zstd or uncompressed; an uncompressed layer
// must hash to its diff_id), and the platform comes from the config.
//
// Every blob is verified before it is committed. Entries with absolute
// names or ".." elements fail the import; only regular files are read (see
// archive.TarFile for links).
func ReadArchive(ctx context.Context, path, ref string, ingester content.Ingester) (ocispec.Descriptor, error) {
	t, err := archive.OpenTar(path)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	defer t.Close()
	desc, err := read(ctx, t, ref, ingester)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("import docker archive %s: %w", path, err)
	}
	return desc, nil
}

// read imports the image ref names from an opened archive: through its OCI
// layout when the layout names it, else through manifest.json.
func read(ctx context.Context, t *archive.TarFile, ref string, ing content.Ingester) (ocispec.Descriptor, error) {
	var idx *ocispec.Index
	var idxErr error
	if t.Has(ocispec.ImageLayoutFile) && !strings.HasPrefix(ref, "@") {
		desc, err := func() (ocispec.Descriptor, error) {
			i, err := archive.ReadIndex(t)
			if err != nil {
				return ocispec.Descriptor{}, err
			}
			idx = &i
			return archive.SelectManifest(i, ref)
		}()
		if err == nil {
			if err := archive.Import(ctx, t, desc, ing); err != nil {
				return ocispec.Descriptor{}, err
			}
			return desc, nil
		}
		idxErr = err
	}
	if !t.Has(ManifestFile) {
		if idxErr != nil {
			return ocispec.Descriptor{}, idxErr
		}
		return ocispec.Descriptor{}, fmt.Errorf("not a docker archive: no %s and no OCI layout", ManifestFile)
	}
	entry, err := selectEntry(t, ref)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if idx != nil {
		desc, found, err := findByConfig(ctx, t, *idx, entry, ing)
		if err != nil || found {
			return desc, err
		}
	}
	return importLegacy(ctx, t, entry, ing)
}

// selectEntry returns the manifest.json entry that ref names.
func selectEntry(t *archive.TarFile, ref string) (ManifestEntry, error) {
	data, err := t.ReadFile(ManifestFile)
	if err != nil {
		return ManifestEntry{}, err
	}
	var entries []ManifestEntry
	if err := json.Unmarshal(data, &entries); err != nil {
		return ManifestEntry{}, fmt.Errorf("decode %s: %w", ManifestFile, err)
	}
	var tags []string
	for _, e := range entries {
		tags = append(tags, e.RepoTags...)
	}
	if n, ok := strings.CutPrefix(ref, "@"); ok {
		i, err := strconv.Atoi(n)
		if err != nil || i < 0 || i >= len(entries) {
			return ManifestEntry{}, fmt.Errorf("%s has %d entries: %q is not one", ManifestFile, len(entries), ref)
		}
		return entries[i], nil
	}
	if ref == "" {
		if len(entries) != 1 {
			return ManifestEntry{}, fmt.Errorf("%s has %d images (tags: %s): choose one by name or @index", ManifestFile, len(entries), strings.Join(tags, ", "))
		}
		return entries[0], nil
	}
	want := archive.NormalizeRef(ref)
	if want == "" {
		return ManifestEntry{}, fmt.Errorf("%q is not an image name", ref)
	}
	for i := len(entries) - 1; i >= 0; i-- {
		if slices.ContainsFunc(entries[i].RepoTags, func(tag string) bool { return archive.NormalizeRef(tag) == want }) {
			return entries[i], nil
		}
	}
	return ManifestEntry{}, fmt.Errorf("no image tagged %q in %s (tags: %s)", ref, ManifestFile, strings.Join(tags, ", "))
}

// findByConfig looks in the archive's OCI layout for the image manifest of
// entry (by config digest) and imports it unchanged when found.
func findByConfig(ctx context.Context, t *archive.TarFile, idx ocispec.Index, entry ManifestEntry, ing content.Ingester) (ocispec.Descriptor, bool, error) {
	for _, d := range idx.Manifests {
		g, err := archive.Walk(ctx, t, d)
		if err != nil {
			return ocispec.Descriptor{}, false, err
		}
		for _, img := range g.Images {
			if archive.BlobPath(img.Config.Digest) != path.Clean(entry.Config) {
				continue
			}
			if err := archive.Import(ctx, t, img.Manifest, ing); err != nil {
				return ocispec.Descriptor{}, false, err
			}
			return img.Manifest, true, nil
		}
	}
	return ocispec.Descriptor{}, false, nil
}
