// Package unpack applies an image's layers to a directory, so an exported
// image can be run at once (lade commit --unpack, lade unpack) and checked
// against its input. Layers are read digest-verified and applied with
// containerd's archive.Apply, which resolves every path inside the root:
// `..`, absolute names, symlinks and hard links never reach outside it.
package unpack

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/pkg/archive"
	"github.com/containerd/containerd/v2/pkg/archive/compression"
	"github.com/containerd/platforms"
	"github.com/lade-build/lade/cache"
	imagearchive "github.com/lade-build/lade/exporter/archive"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Options control Unpack.
type Options struct {
	// Platform picks the manifest of an index; nil means the host's.
	Platform *ocispec.Platform
	// NoSameOwner leaves files owned by the caller instead of the layer's
	// uid/gid (for unprivileged use).
	NoSameOwner bool
}

// Unpack applies the layers of the image rooted at root (a manifest, or an
// index and opts.Platform) to dir, which must be empty or missing. Each
// layer's digest and diffID are verified as it is applied; on a mismatch
// the error names the layer and dir must be discarded.
func Unpack(ctx context.Context, provider content.Provider, root ocispec.Descriptor, dir string, opts Options) error {
	mfst, cfg, err := resolve(ctx, provider, root, opts.Platform)
	if err != nil {
		return err
	}
	if len(cfg.RootFS.DiffIDs) != len(mfst.Layers) {
		return fmt.Errorf("image config lists %d diff_ids for %d layers", len(cfg.RootFS.DiffIDs), len(mfst.Layers))
	}
	if err := emptyDir(dir); err != nil {
		return err
	}
	var aopts []archive.ApplyOpt
	if opts.NoSameOwner {
		aopts = append(aopts, archive.WithNoSameOwner())
	}
	for i, l := range mfst.Layers {
		if err := applyLayer(ctx, provider, l, cfg.RootFS.DiffIDs[i], dir, aopts); err != nil {
			return fmt.Errorf("layer %d (%s): %w", i, l.Digest, err)
		}
	}
	return nil
}

// applyLayer applies one layer, verifying blob digest and diffID at EOF.
func applyLayer(ctx context.Context, p content.Provider, l ocispec.Descriptor, diffID digest.Digest, dir string, opts []archive.ApplyOpt) error {
	ra, err := p.ReaderAt(ctx, l)
	if err != nil {
		return err
	}
	defer ra.Close()
	blobV := l.Digest.Verifier()
	r := io.TeeReader(content.NewReader(ra), blobV)
	dr, err := compression.DecompressStream(r)
	if err != nil {
		return fmt.Errorf("decompress: %w", err)
	}
	defer dr.Close()
	diffV := diffID.Verifier()
	if _, err := archive.Apply(ctx, dir, io.TeeReader(dr, diffV), opts...); err != nil {
		// A corrupt blob explains any failure: read the rest to tell.
		if _, derr := io.Copy(io.Discard, r); derr == nil && !blobV.Verified() {
			return fmt.Errorf("apply failed (%v): %w", err, cache.ErrDigestMismatch)
		}
		return fmt.Errorf("apply: %w", err)
	}
	// drain padding so both digests see every byte
	if _, err := io.Copy(diffV, dr); err != nil {
		return fmt.Errorf("decompress: %w", err)
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	if !blobV.Verified() {
		return cache.ErrDigestMismatch
	}
	if !diffV.Verified() {
		return fmt.Errorf("its uncompressed content does not match diffID %s: %w", diffID, cache.ErrDigestMismatch)
	}
	return nil
}

// resolve finds the manifest and config for platform.
func resolve(ctx context.Context, p content.Provider, root ocispec.Descriptor, platform *ocispec.Platform) (ocispec.Manifest, ocispec.Image, error) {
	var m ocispec.Manifest
	var cfg ocispec.Image
	desc := root
	if imagearchive.IsIndex(root.MediaType) {
		want := platforms.DefaultSpec()
		if platform != nil {
			want = *platform
		}
		var idx ocispec.Index
		if err := imagearchive.ReadJSON(ctx, p, root, &idx); err != nil {
			return m, cfg, err
		}
		match := platforms.Only(want)
		found := false
		for _, d := range idx.Manifests {
			if d.Platform != nil && match.Match(*d.Platform) {
				desc, found = d, true
				break
			}
		}
		if !found {
			return m, cfg, fmt.Errorf("image has no manifest for %s", platforms.Format(want))
		}
	}
	if err := imagearchive.ReadJSON(ctx, p, desc, &m); err != nil {
		return m, cfg, err
	}
	return m, cfg, imagearchive.ReadJSON(ctx, p, m.Config, &cfg)
}

// emptyDir creates dir or checks it is empty.
func emptyDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("unpack to %s: %w", dir, err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("unpack to %s: %w", dir, err)
	}
	if len(ents) > 0 {
		return fmt.Errorf("unpack to %s: directory is not empty", dir)
	}
	return nil
}
