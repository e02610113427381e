package buildkit

import (
	"context"
	"fmt"
	"maps"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	"github.com/lade-build/lade/blobs"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// BuildKit's cache keeps only the blob annotations it knows
// (filterAnnotationsForSave: eStargz's, overlaybd's, the diffID), so the
// zstd:chunked annotations lade's compressor gives a blob are gone from
// the descriptors GetRemotes returns. They are recovered from the blob
// itself: its footer gives the TOC and tar-split positions, and the TOC's
// bytes its checksum.

// zstdChunkedAnnotations returns the zstd:chunked annotations of the
// blob desc in cs; nil when it is not a zstd:chunked blob or not in cs
// (a lazy base layer is not fetched for this).
func zstdChunkedAnnotations(ctx context.Context, cs content.Store, desc ocispecs.Descriptor) (map[string]string, error) {
	if t, err := blobs.TypeOfMediaType(desc.MediaType); err != nil || t != blobs.Zstd {
		return nil, nil
	}
	if _, err := cs.Info(ctx, desc.Digest); errdefs.IsNotFound(err) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	ra, err := cs.ReaderAt(ctx, desc)
	if err != nil {
		return nil, fmt.Errorf("open blob %s: %w", desc.Digest, err)
	}
	defer ra.Close()
	a, err := blobs.ZstdChunkedAnnotations(ra, ra.Size())
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	return a, nil
}

// restoreZstdChunked puts back the zstd:chunked annotations of the
// zstd:chunked blobs among descs (see zstdChunkedAnnotations).
func restoreZstdChunked(ctx context.Context, cs content.Store, descs []ocispecs.Descriptor) error {
	for n, d := range descs {
		if d.Annotations[blobs.AnnotationZstdChunkedTOC] != "" {
			continue
		}
		a, err := zstdChunkedAnnotations(ctx, cs, d)
		if err != nil {
			return err
		}
		if a == nil {
			continue
		}
		merged := maps.Clone(d.Annotations)
		if merged == nil {
			merged = map[string]string{}
		}
		maps.Copy(merged, a)
		descs[n].Annotations = merged
	}
	return nil
}
