package docker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/platforms"
	"github.com/lade-build/lade/exporter/archive"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ManifestFile is the name of the docker archive manifest.
const ManifestFile = "manifest.json"

// annotationReferenceType marks BuildKit's attestation manifests, which are
// not images and are left out of manifest.json.
const annotationReferenceType = "vnd.docker.reference.type"

// ManifestEntry is one entry of manifest.json: one image for docker load.
type ManifestEntry struct {
	// Config is the path of the image config inside the archive.
	Config string
	// RepoTags are familiar tagged names ("foo:latest"); null for none.
	RepoTags []string
	// Layers are the paths of the layer blobs, bottom first.
	Layers []string
}

// WriteArchive streams a docker archive of root to w. manifest.json has one
// entry per image manifest of root, in index order (attestation manifests
// and non-image artifacts are left out); since docker load gives a tag to
// the last entry loaded with it, only the entry chosen by opts.Platform
// carries RepoTags, and the others load untagged, by ID. The OCI layout
// beside it (index.json naming root with every name) keeps the full
// multi-platform image for OCI readers.
//
// Output is deterministic for the same content and options (fixed order,
// mtime opts.Epoch or the Unix epoch, uid/gid 0); blobs are streamed,
// verified and written once, children first. On error the stream is
// incomplete and must be discarded. w is not closed.
func WriteArchive(ctx context.Context, provider content.Provider, root ocispec.Descriptor, w io.Writer, opts Options) error {
	if err := opts.Validate(); err != nil {
		return err
	}
	names, err := archive.ParseNames(opts.Names)
	if err != nil {
		return err
	}
	g, err := archive.Walk(ctx, provider, root)
	if err != nil {
		return fmt.Errorf("docker archive: %w", err)
	}
	entries, err := manifestEntries(ctx, provider, g, names, opts.Platform)
	if err != nil {
		return fmt.Errorf("docker archive: %w", err)
	}
	mj, err := json.Marshal(entries)
	if err != nil {
		return fmt.Errorf("encode %s: %w", ManifestFile, err)
	}
	index, err := archive.EncodeIndex(archive.IndexEntries(root, names, opts.Created))
	if err != nil {
		return err
	}
	tw := archive.NewTarWriter(w, opts.mtime())
	extra := []archive.File{{Name: ManifestFile, Data: mj}}
	if err := archive.WriteLayoutTar(ctx, tw, provider, g, index, extra, opts.Progress, "docker-tar"); err != nil {
		return fmt.Errorf("docker archive: %w", err)
	}
	return tw.Close()
}

// manifestEntries returns manifest.json's entries for the images of g,
// RepoTags on the one that best matches platform.
func manifestEntries(ctx context.Context, p content.Provider, g *archive.Graph, names []archive.Name, platform *ocispec.Platform) ([]ManifestEntry, error) {
	var imgs []archive.Image
	for _, img := range g.Images {
		if archive.IsConfig(img.Config.MediaType) && img.Manifest.Annotations[annotationReferenceType] != "attestation-manifest" {
			imgs = append(imgs, img)
		}
	}
	if len(imgs) == 0 {
		return nil, fmt.Errorf("%s references no image manifest", g.Root.Digest)
	}
	tagged, err := pickTagged(ctx, p, imgs, platform)
	if err != nil {
		return nil, err
	}
	entries := make([]ManifestEntry, len(imgs))
	for i, img := range imgs {
		entries[i].Config = archive.BlobPath(img.Config.Digest)
		entries[i].Layers = []string{}
		for _, l := range img.Layers {
			entries[i].Layers = append(entries[i].Layers, archive.BlobPath(l.Digest))
		}
	}
	for _, n := range names {
		entries[tagged].RepoTags = append(entries[tagged].RepoTags, n.Familiar)
	}
	return entries, nil
}

// pickTagged returns the index of the image that best matches want (the
// host platform when nil), or 0 when none matches.
func pickTagged(ctx context.Context, p content.Provider, imgs []archive.Image, want *ocispec.Platform) (int, error) {
	if len(imgs) == 1 {
		return 0, nil
	}
	spec := platforms.DefaultSpec()
	if want != nil {
		spec = *want
	}
	m := platforms.Only(spec)
	best, bestPlat := 0, (*ocispec.Platform)(nil)
	for i, img := range imgs {
		plat, err := imagePlatform(ctx, p, img)
		if err != nil {
			return 0, err
		}
		if m.Match(plat) && (bestPlat == nil || m.Less(plat, *bestPlat)) {
			best, bestPlat = i, &plat
		}
	}
	return best, nil
}

// imagePlatform is the platform an index gives img, or else its config's.
func imagePlatform(ctx context.Context, p content.Provider, img archive.Image) (ocispec.Platform, error) {
	if img.Manifest.Platform != nil {
		return *img.Manifest.Platform, nil
	}
	data, err := archive.ReadVerified(ctx, p, img.Config)
	if err != nil {
		return ocispec.Platform{}, err
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(data, &cfg); err != nil {
		return ocispec.Platform{}, fmt.Errorf("decode config %s: %w", img.Config.Digest, err)
	}
	return cfg.Platform, nil
}
