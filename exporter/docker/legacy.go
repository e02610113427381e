package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	"github.com/lade-build/lade/cache"
	"github.com/lade-build/lade/exporter/archive"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// importLegacy synthesizes a manifest for a manifest.json entry from its
// config and layer files and imports the image.
func importLegacy(ctx context.Context, t *archive.TarFile, e ManifestEntry, ing content.Ingester) (ocispec.Descriptor, error) {
	files := &fileProvider{t: t, paths: map[digest.Digest]string{}, data: map[digest.Digest][]byte{}}
	cfgData, err := t.ReadFile(e.Config)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("image config: %w", err)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(cfgData, &cfg); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("decode image config %s: %w", e.Config, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(e.Layers) {
		return ocispec.Descriptor{}, fmt.Errorf("image config %s lists %d diff_ids for %d layers", e.Config, len(cfg.RootFS.DiffIDs), len(e.Layers))
	}
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: archive.MediaTypeDockerManifest}
	m.Config = ocispec.Descriptor{MediaType: archive.MediaTypeDockerConfig, Digest: digest.FromBytes(cfgData), Size: int64(len(cfgData))}
	files.data[m.Config.Digest] = cfgData
	zstd := false
	for i, name := range e.Layers {
		l, err := describeLayer(t, name, cfg.RootFS.DiffIDs[i])
		if err != nil {
			return ocispec.Descriptor{}, err
		}
		zstd = zstd || l.MediaType == ocispec.MediaTypeImageLayerZstd
		files.paths[l.Digest] = name
		m.Layers = append(m.Layers, l)
	}
	if zstd { // Docker schema 2 has no zstd layers: use OCI types throughout.
		m.MediaType, m.Config.MediaType = ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageConfig
		for i := range m.Layers {
			m.Layers[i].MediaType = ociLayerType(m.Layers[i].MediaType)
		}
	}
	data, err := json.Marshal(m)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("encode manifest: %w", err)
	}
	desc := ocispec.Descriptor{MediaType: m.MediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}
	if cfg.OS != "" || cfg.Architecture != "" {
		plat := cfg.Platform
		desc.Platform = &plat
	}
	files.data[desc.Digest] = data
	if err := archive.Import(ctx, files, desc, ing); err != nil {
		return ocispec.Descriptor{}, err
	}
	return desc, nil
}

// describeLayer hashes a layer file as stored and sniffs its compression.
func describeLayer(t *archive.TarFile, name string, diffID digest.Digest) (ocispec.Descriptor, error) {
	r, err := t.Open(name)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("layer: %w", err)
	}
	head := make([]byte, 4)
	n, _ := r.ReadAt(head, 0)
	head = head[:n]
	d := ocispec.Descriptor{MediaType: archive.MediaTypeDockerLayer, Size: r.Size()}
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		d.MediaType = archive.MediaTypeDockerLayerGzip
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		d.MediaType = ocispec.MediaTypeImageLayerZstd
	}
	dg := digest.Canonical.Digester()
	if _, err := io.Copy(dg.Hash(), r); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("read layer %s: %w", name, err)
	}
	d.Digest = dg.Digest()
	if d.MediaType == archive.MediaTypeDockerLayer && d.Digest != diffID {
		return ocispec.Descriptor{}, fmt.Errorf("layer %s is neither gzip nor zstd, and as a plain tar its digest %s is not its diff_id %s: %w", name, d.Digest, diffID, cache.ErrDigestMismatch)
	}
	return d, nil
}

// ociLayerType maps a Docker layer media type to its OCI equivalent.
func ociLayerType(mt string) string {
	switch mt {
	case archive.MediaTypeDockerLayerGzip:
		return ocispec.MediaTypeImageLayerGzip
	case archive.MediaTypeDockerLayer:
		return ocispec.MediaTypeImageLayer
	}
	return mt
}

// fileProvider serves a synthesized image: small blobs from memory, layers
// from their files inside the archive.
type fileProvider struct {
	t     *archive.TarFile
	paths map[digest.Digest]string
	data  map[digest.Digest][]byte
}

// ReaderAt implements content.Provider.
func (f *fileProvider) ReaderAt(_ context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	if b, ok := f.data[desc.Digest]; ok {
		return nopCloser{bytes.NewReader(b)}, nil
	}
	name, ok := f.paths[desc.Digest]
	if !ok {
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, errdefs.ErrNotFound)
	}
	r, err := f.t.Open(name)
	if err != nil {
		return nil, err
	}
	return nopCloser{r}, nil
}

// sizedReaderAt is a ReaderAt that knows its size.
type sizedReaderAt interface {
	io.ReaderAt
	Size() int64
}

// nopCloser adds a no-op Close to a sizedReaderAt.
type nopCloser struct{ sizedReaderAt }

// Close does nothing.
func (nopCloser) Close() error { return nil }
