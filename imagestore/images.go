package imagestore

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Image is a named image of the Store.
type Image struct {
	// Name is the normalized reference, e.g. docker.io/library/foo:latest.
	Name string
	// Target is the image's root: an index or a manifest.
	Target ocispec.Descriptor
	// CreatedAt and UpdatedAt are set by the Store.
	CreatedAt, UpdatedAt time.Time
}

// setImageTries bounds the create-or-update loop of SetImage against
// concurrent creators and deleters of the same name.
const setImageTries = 10

// NormalizeName returns the full form of an image reference: the
// docker.io/library/ prefix is added where implied and the tag defaults to
// latest (references with a digest keep it). Invalid references yield an
// error wrapping errdefs.ErrInvalidArgument.
func NormalizeName(name string) (string, error) {
	named, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return "", fmt.Errorf("image name %q: %v: %w", name, err, errdefs.ErrInvalidArgument)
	}
	return reference.TagNameOnly(named).String(), nil
}

// SetImage points name at target, creating the image or updating it. The
// target's blob must be in the content store with target's size (else
// errdefs.ErrFailedPrecondition); its children are the caller's business,
// kept alive by gc.ref.content labels. name is normalized (NormalizeName).
func (s *Store) SetImage(ctx context.Context, name string, target ocispec.Descriptor) error {
	full, err := NormalizeName(name)
	if err != nil {
		return fmt.Errorf("set image: %w", err)
	}
	if err := target.Digest.Validate(); err != nil {
		return fmt.Errorf("set image %s: target digest %q: %v: %w", full, target.Digest, err, errdefs.ErrInvalidArgument)
	}
	ctx = ns(ctx)
	info, err := s.content.Info(ctx, target.Digest)
	if errdefs.IsNotFound(err) {
		return fmt.Errorf("set image %s: target %s is not in the content store: %w",
			full, target.Digest, errdefs.ErrFailedPrecondition)
	} else if err != nil {
		return fmt.Errorf("set image %s: %w", full, err)
	}
	if info.Size != target.Size {
		return fmt.Errorf("set image %s: target %s has size %d, stored blob %d: %w",
			full, target.Digest, target.Size, info.Size, errdefs.ErrFailedPrecondition)
	}
	img := images.Image{Name: full, Target: target}
	for range setImageTries {
		_, err = s.images.Update(ctx, img, "target")
		if !errdefs.IsNotFound(err) {
			break
		}
		_, err = s.images.Create(ctx, img)
		if !errdefs.IsAlreadyExists(err) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("set image %s: %w", full, err)
	}
	return nil
}

// GetImage returns the image called name (normalized first). A missing image
// yields an error wrapping errdefs.ErrNotFound.
func (s *Store) GetImage(ctx context.Context, name string) (Image, error) {
	full, err := NormalizeName(name)
	if err != nil {
		return Image{}, fmt.Errorf("get image: %w", err)
	}
	img, err := s.images.Get(ns(ctx), full)
	if err != nil {
		return Image{}, fmt.Errorf("get image %s: %w", full, err)
	}
	return fromContainerd(img), nil
}

// ListImages returns all images sorted by name.
func (s *Store) ListImages(ctx context.Context) ([]Image, error) {
	imgs, err := s.images.List(ns(ctx))
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	out := make([]Image, 0, len(imgs))
	for _, img := range imgs {
		out = append(out, fromContainerd(img))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// DeleteImage removes the image called name (normalized first). Its content
// stays until Prune. A missing image yields an error wrapping
// errdefs.ErrNotFound.
func (s *Store) DeleteImage(ctx context.Context, name string) error {
	full, err := NormalizeName(name)
	if err != nil {
		return fmt.Errorf("delete image: %w", err)
	}
	if err := s.images.Delete(ns(ctx), full); err != nil {
		return fmt.Errorf("delete image %s: %w", full, err)
	}
	return nil
}

func fromContainerd(img images.Image) Image {
	return Image{Name: img.Name, Target: img.Target, CreatedAt: img.CreatedAt, UpdatedAt: img.UpdatedAt}
}
