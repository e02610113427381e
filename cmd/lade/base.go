package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/lade-build/lade/cache"
	"github.com/lade-build/lade/commit"
	"github.com/lade-build/lade/exporter/archive"
	"github.com/lade-build/lade/imagestore"
	"github.com/lade-build/lade/transfer"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// resolveImage brings an image reference into the store and returns its
// root descriptor: a store name, oci:DIR[:TAG], oci-archive:FILE[:TAG],
// docker-archive:FILE or docker://REF (short names resolved by the
// registries configuration).
func resolveImage(ctx context.Context, s *imagestore.Store, ref string, reg registrySettings) (ocispec.Descriptor, error) {
	return transfer.Resolve(ctx, s, ref, reg.transferOptions(nil))
}

// loadBase resolves ref and loads it for platform p with the library's
// one base loader (commit.LoadBase): its layers as stored refs, reused as
// they are, and its config.
func loadBase(ctx context.Context, s *imagestore.Store, ref string, p ocispec.Platform, reg registrySettings) (commit.Base, error) {
	root, err := resolveImage(ctx, s, ref, reg)
	if err != nil {
		return commit.Base{}, fmt.Errorf("base %s: %w", ref, err)
	}
	b, err := commit.LoadBase(ctx, s.Content(), root, &p)
	if err != nil {
		return commit.Base{}, fmt.Errorf("%s: %w", ref, err)
	}
	return b, nil
}

// readStored reads a small blob of the store, verified by the library's
// one verified read (archive.ReadVerified).
func readStored(ctx context.Context, p content.Provider, d ocispec.Descriptor) ([]byte, error) {
	b, err := archive.ReadVerified(ctx, p, d)
	return b, corrupt(err)
}

// readJSON reads a small blob of the store as readStored does and decodes
// its JSON into v.
func readJSON(ctx context.Context, p content.Provider, d ocispec.Descriptor, v any) error {
	return corrupt(archive.ReadJSON(ctx, p, d, v))
}

// corrupt says what to do when content does not match its digest: the
// store is corrupt, which lade check reports in full.
func corrupt(err error) error {
	if errors.Is(err, cache.ErrDigestMismatch) {
		return fmt.Errorf("%w (the store is corrupt: run lade check)", err)
	}
	return err
}
