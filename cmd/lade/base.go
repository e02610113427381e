package main

import (
	"context"
	"encoding/json"
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
// one verified read (archive.ReadVerified). Content that does not match
// its digest is a corrupt store, which lade check reports in full.
func readStored(ctx context.Context, p content.Provider, d ocispec.Descriptor) ([]byte, error) {
	b, err := archive.ReadVerified(ctx, p, d)
	if errors.Is(err, cache.ErrDigestMismatch) {
		return nil, fmt.Errorf("%w (the store is corrupt: run lade check)", err)
	}
	return b, err
}

// readJSON reads a small blob of the store (readStored) and decodes its
// JSON into v.
func readJSON(ctx context.Context, p content.Provider, d ocispec.Descriptor, v any) error {
	b, err := readStored(ctx, p, d)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %s: %w", d.Digest, err)
	}
	return nil
}
