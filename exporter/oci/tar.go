package oci

import (
	"context"
	"fmt"
	"io"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/lade-build/lade/exporter/archive"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// WriteTar streams the OCI image layout of root as a tar to w: oci-layout,
// the blobs (children first, each once, streamed and verified, never
// buffered whole) and index.json last. The output is deterministic: the
// same content and options give the same bytes (fixed order, mtime
// opts.Epoch or the Unix epoch, uid/gid 0). On error the stream is
// incomplete and must be discarded. w is not closed.
func WriteTar(ctx context.Context, provider content.Provider, root ocispec.Descriptor, w io.Writer, opts Options) error {
	if err := opts.Validate(); err != nil {
		return err
	}
	names, err := opts.names()
	if err != nil {
		return err
	}
	g, err := archive.Walk(ctx, provider, root)
	if err != nil {
		return fmt.Errorf("oci tar: %w", err)
	}
	index, err := archive.EncodeIndex(archive.IndexEntries(root, names, opts.Created))
	if err != nil {
		return err
	}
	tw := archive.NewTarWriter(w, opts.mtime())
	if err := archive.WriteLayoutTar(ctx, tw, provider, g, index, nil, opts.Progress, "oci-tar"); err != nil {
		return fmt.Errorf("oci tar: %w", err)
	}
	return tw.Close()
}
