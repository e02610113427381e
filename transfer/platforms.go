package transfer

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/lade-build/lade/exporter/archive"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// narrow returns the root to copy and the provider to read it from: root
// itself for a single manifest or with All; the one manifest picked of an
// index; or a new index of the manifests picked, served from memory in
// front of p.
func narrow(ctx context.Context, p content.Provider, root ocispec.Descriptor, opts Options) (content.Provider, ocispec.Descriptor, error) {
	if opts.All || !archive.IsIndex(root.MediaType) {
		return p, root, nil
	}
	data, err := archive.ReadVerified(ctx, p, root)
	if err != nil {
		return nil, root, fmt.Errorf("read index: %w", err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, root, fmt.Errorf("decode index %s: %w", root.Digest, err)
	}
	var picked []ocispec.Descriptor
	if len(opts.Platforms) == 0 {
		host := platforms.Default()
		for _, d := range idx.Manifests {
			if d.Platform != nil && host.Match(*d.Platform) {
				picked = append(picked, d)
			}
		}
		sort.SliceStable(picked, func(i, j int) bool { return host.Less(*picked[i].Platform, *picked[j].Platform) })
		if len(picked) > 1 {
			picked = picked[:1]
		}
	}
	for _, want := range opts.Platforms {
		m := platforms.NewMatcher(want)
		found := false
		for _, d := range idx.Manifests {
			if d.Platform != nil && m.Match(*d.Platform) && !hasDigest(picked, d.Digest) {
				picked, found = append(picked, d), true
				break
			}
		}
		if !found {
			return nil, root, fmt.Errorf("index %s has no manifest for platform %s (it has %s)", root.Digest, platforms.Format(want), listPlatforms(idx))
		}
	}
	switch len(picked) {
	case 0:
		return nil, root, fmt.Errorf("index %s has no manifest for this host's platform %s (it has %s): pass --platform or --all",
			root.Digest, platforms.Format(platforms.DefaultSpec()), listPlatforms(idx))
	case 1:
		return p, picked[0], nil
	}
	idx.Manifests = picked
	b, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return nil, root, err
	}
	desc := ocispec.Descriptor{MediaType: root.MediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
	return &withBlob{Provider: p, desc: desc, data: b}, desc, nil
}

// hasDigest reports whether ds holds a descriptor of digest d.
func hasDigest(ds []ocispec.Descriptor, d digest.Digest) bool {
	for _, x := range ds {
		if x.Digest == d {
			return true
		}
	}
	return false
}

// listPlatforms lists an index's platforms for messages.
func listPlatforms(idx ocispec.Index) string {
	var out []string
	for _, d := range idx.Manifests {
		if d.Platform != nil {
			out = append(out, platforms.Format(*d.Platform))
		}
	}
	if len(out) == 0 {
		return "no platforms"
	}
	return strings.Join(out, ", ")
}

// withBlob is a provider that serves one in-memory blob in front of
// another provider, and passes Info through when that one has it.
type withBlob struct {
	content.Provider
	desc ocispec.Descriptor
	data []byte
}

// ReaderAt serves the in-memory blob or asks the underlying provider.
func (w *withBlob) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	if desc.Digest == w.desc.Digest {
		return bytesReaderAt(w.data), nil
	}
	return w.Provider.ReaderAt(ctx, desc)
}

// Info asks the underlying provider, if it has Info.
func (w *withBlob) Info(ctx context.Context, dgst digest.Digest) (content.Info, error) {
	if ip, ok := w.Provider.(content.InfoProvider); ok {
		return ip.Info(ctx, dgst)
	}
	return content.Info{}, fmt.Errorf("%s: %w", dgst, errdefs.ErrNotFound)
}

// bytesReaderAt is a content.ReaderAt over a byte slice.
type bytesReaderAt []byte

// ReadAt reads from the slice.
func (b bytesReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(b)) {
		return 0, io.EOF
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Size returns the slice's length.
func (b bytesReaderAt) Size() int64 { return int64(len(b)) }

// Close does nothing.
func (bytesReaderAt) Close() error { return nil }
