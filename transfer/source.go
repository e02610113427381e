package transfer

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/lade-build/lade/exporter/archive"
	"github.com/lade-build/lade/exporter/docker"
	"github.com/lade-build/lade/exporter/push"
	"github.com/lade-build/lade/imagestore"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// source is an opened image: where its blobs are read from and its root.
type source struct {
	provider content.Provider
	root     ocispec.Descriptor
	// name is the resolved reference, for messages and store names.
	name  string
	close func() error
}

// open opens ref for reading without reading any layer. A docker archive
// is imported into s first (its manifests are synthesized there); the
// caller's ctx should carry a lease of s.
func open(ctx context.Context, s *imagestore.Store, ref Ref, opts Options) (*source, error) {
	nop := func() error { return nil }
	switch ref.Kind {
	case KindStore:
		img, err := s.GetImage(ctx, ref.Name)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w (use oci:DIR, oci-archive:FILE, docker-archive:FILE or docker://REF for images outside the store)", ref.Name, err)
		}
		return &source{provider: s.Content(), root: img.Target, name: img.Name, close: nop}, nil
	case KindOCI, KindOCIArchive:
		return openLayout(ref)
	case KindDockerArchive:
		root, err := docker.ReadArchive(ctx, ref.Path, ref.Name, s.Content())
		if err != nil {
			return nil, err
		}
		return &source{provider: s.Content(), root: root, name: ref.String(), close: nop}, nil
	case KindRegistry:
		r, name, err := OpenRegistry(ctx, ref.Name, opts)
		if err != nil {
			return nil, err
		}
		return &source{provider: r, root: r.Root(), name: name, close: r.Close}, nil
	}
	return nil, fmt.Errorf("image reference %s: unknown kind %d", ref, ref.Kind)
}

// openLayout opens an OCI layout directory or tar file in place.
func openLayout(ref Ref) (*source, error) {
	var l interface {
		archive.Layout
		Close() error
	}
	if ref.Kind == KindOCI {
		d, err := archive.OpenDir(ref.Path)
		if err != nil {
			return nil, err
		}
		l = d
	} else {
		t, err := archive.OpenTar(ref.Path)
		if err != nil {
			return nil, err
		}
		l = t
	}
	idx, err := archive.ReadIndex(l)
	if err == nil {
		var root ocispec.Descriptor
		if root, err = archive.SelectManifest(idx, ref.Name); err == nil {
			return &source{provider: l, root: root, name: ref.String(), close: l.Close}, nil
		}
	}
	l.Close()
	return nil, fmt.Errorf("open %s: %w", ref, err)
}

// OpenRegistry resolves name with opts.Registries (short names, aliases,
// mirrors, blocked registries) and opens the first candidate and source
// that answers. It returns the image and the fully qualified name it was
// found under (before location rewriting or mirroring: the name to store
// it as). The error of a name that no source has lists every place tried
// and why it failed.
func OpenRegistry(ctx context.Context, name string, opts Options) (*push.Remote, string, error) {
	cands, err := opts.Registries.Candidates(name)
	if err != nil {
		return nil, "", err
	}
	var tried []string
	var errs []error
	for _, c := range cands {
		srcs, err := opts.Registries.PullSources(c.Ref)
		if err != nil {
			tried = append(tried, fmt.Sprintf("%s (%s): %v", c.Ref, c.Origin, err))
			errs = append(errs, err)
			continue
		}
		for _, src := range srcs {
			ro := opts.Registry
			ro.Insecure = ro.Insecure || src.Insecure
			ro.Progress = nil
			r, err := push.OpenRemote(ctx, src.Ref, ro)
			if err == nil {
				return r, c.Ref.String(), nil
			}
			if ctx.Err() != nil {
				return nil, "", err
			}
			what := c.Origin
			if src.Mirror {
				what = "mirror of " + c.Ref.String()
			}
			tried = append(tried, fmt.Sprintf("%s (%s): %v", src.Ref, what, err))
			errs = append(errs, err)
		}
	}
	if len(errs) == 1 {
		return nil, "", errs[0]
	}
	return nil, "", fmt.Errorf("image %s not found: tried %s: %w", name, strings.Join(tried, "; "), errors.Join(errs...))
}
