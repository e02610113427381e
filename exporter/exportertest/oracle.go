// Package exportertest holds the output oracle that every test writing an
// image applies to it, and small fixtures for exporter tests.
package exportertest

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Image is what the oracle learned of one platform image.
type Image struct {
	Manifest ocispec.Manifest
	Config   ocispec.Image
	// DiffIDs are the digests of the layers' uncompressed bytes.
	DiffIDs []digest.Digest
}

// Verify checks an image (index or manifest) rooted at root:
//   - every descriptor's blob exists with its size and digest;
//   - rootfs.diff_ids equal the digests of the decompressed layers;
//   - non-empty history entries equal the layers in number;
//   - media types are all OCI or all Docker;
//   - index platforms match the configs.
//
// It returns the images found, in index order.
func Verify(ctx context.Context, p content.Provider, root ocispec.Descriptor) ([]Image, error) {
	docker := isDocker(root.MediaType)
	switch root.MediaType {
	case ocispec.MediaTypeImageIndex, images.MediaTypeDockerSchema2ManifestList:
		var idx ocispec.Index
		if err := readJSON(ctx, p, root, &idx); err != nil {
			return nil, err
		}
		var out []Image
		for _, m := range idx.Manifests {
			if isDocker(m.MediaType) != docker {
				return nil, fmt.Errorf("manifest %s media type %s mixed into %s", m.Digest, m.MediaType, root.MediaType)
			}
			img, err := verifyManifest(ctx, p, m, docker)
			if err != nil {
				return nil, err
			}
			if m.Platform == nil || m.Platform.OS != img.Config.OS || m.Platform.Architecture != img.Config.Architecture {
				return nil, fmt.Errorf("manifest %s: index platform %v does not match config %s/%s", m.Digest, m.Platform, img.Config.OS, img.Config.Architecture)
			}
			out = append(out, img)
		}
		return out, nil
	case ocispec.MediaTypeImageManifest, images.MediaTypeDockerSchema2Manifest:
		img, err := verifyManifest(ctx, p, root, docker)
		if err != nil {
			return nil, err
		}
		return []Image{img}, nil
	}
	return nil, fmt.Errorf("root media type %q is neither an index nor a manifest", root.MediaType)
}

func verifyManifest(ctx context.Context, p content.Provider, d ocispec.Descriptor, docker bool) (Image, error) {
	var img Image
	if err := readJSON(ctx, p, d, &img.Manifest); err != nil {
		return img, err
	}
	if img.Manifest.MediaType != d.MediaType {
		return img, fmt.Errorf("manifest %s: mediaType field %q differs from its descriptor's %q", d.Digest, img.Manifest.MediaType, d.MediaType)
	}
	if isDocker(img.Manifest.Config.MediaType) != docker {
		return img, fmt.Errorf("manifest %s: config media type %s mixed", d.Digest, img.Manifest.Config.MediaType)
	}
	if err := readJSON(ctx, p, img.Manifest.Config, &img.Config); err != nil {
		return img, err
	}
	for _, l := range img.Manifest.Layers {
		if isDocker(l.MediaType) != docker {
			return img, fmt.Errorf("layer %s: media type %s mixed", l.Digest, l.MediaType)
		}
		id, err := diffID(ctx, p, l)
		if err != nil {
			return img, err
		}
		img.DiffIDs = append(img.DiffIDs, id)
	}
	if fmt.Sprint(img.DiffIDs) != fmt.Sprint(img.Config.RootFS.DiffIDs) {
		return img, fmt.Errorf("manifest %s: rootfs.diff_ids %v differ from the layers' %v", d.Digest, img.Config.RootFS.DiffIDs, img.DiffIDs)
	}
	nonEmpty := 0
	for _, h := range img.Config.History {
		if !h.EmptyLayer {
			nonEmpty++
		}
	}
	if nonEmpty != len(img.Manifest.Layers) {
		return img, fmt.Errorf("manifest %s: %d non-empty history entries for %d layers", d.Digest, nonEmpty, len(img.Manifest.Layers))
	}
	return img, nil
}

// Open returns a reader of d's blob that fails at EOF unless size and
// digest match.
func Open(ctx context.Context, p content.Provider, d ocispec.Descriptor) (io.ReadCloser, error) {
	ra, err := p.ReaderAt(ctx, d)
	if err != nil {
		return nil, fmt.Errorf("blob %s missing: %w", d.Digest, err)
	}
	if ra.Size() != d.Size {
		ra.Close()
		return nil, fmt.Errorf("blob %s: size %d, descriptor says %d", d.Digest, ra.Size(), d.Size)
	}
	return &verified{r: content.NewReader(ra), c: ra, v: d.Digest.Verifier(), d: d.Digest}, nil
}

type verified struct {
	r io.Reader
	c io.Closer
	v digest.Verifier
	d digest.Digest
}

func (v *verified) Read(b []byte) (int, error) {
	n, err := v.r.Read(b)
	v.v.Write(b[:n])
	if err == io.EOF && !v.v.Verified() {
		return n, fmt.Errorf("blob %s: content does not match its digest", v.d)
	}
	return n, err
}

func (v *verified) Close() error { return v.c.Close() }

func readJSON(ctx context.Context, p content.Provider, d ocispec.Descriptor, v any) error {
	rc, err := Open(ctx, p, d)
	if err != nil {
		return err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	return nil
}

// diffID decompresses layer d and returns the digest of its tar.
func diffID(ctx context.Context, p content.Provider, d ocispec.Descriptor) (digest.Digest, error) {
	rc, err := Open(ctx, p, d)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	r, err := Decompress(d.MediaType, rc)
	if err != nil {
		return "", err
	}
	dg := digest.Canonical.Digester()
	if _, err := io.Copy(dg.Hash(), r); err != nil {
		return "", fmt.Errorf("layer %s: %w", d.Digest, err)
	}
	// drain so the digest check at EOF runs
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return "", err
	}
	return dg.Digest(), nil
}

// Decompress returns the tar stream of a layer with media type mt.
func Decompress(mt string, r io.Reader) (io.Reader, error) {
	switch {
	case strings.HasSuffix(mt, "gzip"):
		return gzip.NewReader(r)
	case strings.HasSuffix(mt, "zstd"):
		d, err := zstd.NewReader(r)
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	case strings.HasSuffix(mt, "tar"):
		return r, nil
	}
	return nil, fmt.Errorf("unknown layer media type %s", mt)
}

func isDocker(mt string) bool { return strings.HasPrefix(mt, "application/vnd.docker.") }
