// Package cache is lade's ref model: a Ref is one layer of an image's chain,
// with a parent below it, metadata to synthesize history from, and a way to
// read its diff.
//
// Sources of refs: directory snapshots (DirRef: each ref is a full rootfs and
// its layer is the diff against the parent's rootfs), layer tarballs
// (TarballRef: plain, gzip or zstd), and blobs already in a content store
// (StoredRef: base-image layers reused as they are), and changes reported
// by the caller (ChangesRef: e.g. an overlay upperdir walk over mounts the
// caller prepares). The buildkit package adapts BuildKit's cache refs to the
// same interface.
package cache

import (
	"context"
	"io"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Ref is one layer of a chain.
type Ref interface {
	// ID is a stable identity of this layer's content for the blob cache:
	// two refs with the same ID give the same diff for the same DiffOptions.
	// Computing it must not read layer data (metadata only).
	ID() string
	// Parent is the ref below this one, nil at the bottom.
	Parent() Ref
	// Description is used as the history "created_by" when the image config
	// has no history entry for this layer.
	Description() string
	// CreatedAt is used as the history "created" for a synthesized entry;
	// zero when unknown.
	CreatedAt() time.Time
	// Layer gives access to this ref's diff.
	Layer() Layer
}

// Layer reads one layer.
type Layer interface {
	// Diff returns the uncompressed tar stream of the changes against the
	// parent (OCI whiteouts for deletions). The caller must Close it. With
	// opts.Epoch set, file timestamps newer than the epoch are clamped to it.
	// Reading to EOF verifies any digest the source knows in advance; a
	// mismatch is an error from Read or Close.
	Diff(ctx context.Context, opts DiffOptions) (io.ReadCloser, error)
	// Stored reports a blob of this layer already in the content store,
	// ok=false when the layer must be computed from Diff.
	Stored() (blob Blob, ok bool)
	// Size is a hint of the uncompressed size for scheduling (largest first)
	// and progress; 0 when unknown.
	Size() int64
}

// DiffOptions changes how a diff is produced.
type DiffOptions struct {
	// Epoch, when non-nil, clamps every timestamp in the tar to at most Epoch
	// (SOURCE_DATE_EPOCH with rewrite-timestamp).
	Epoch *time.Time
}

// Blob is a layer blob already present in a content store.
type Blob struct {
	// Descriptor is the compressed blob (media type gives its compression).
	Descriptor ocispec.Descriptor
	// DiffID is the digest of the uncompressed tar.
	DiffID digest.Digest
}

// Chain returns the refs from the bottom of r's chain to r, parent first.
// A nil r gives an empty chain.
func Chain(r Ref) []Ref {
	var out []Ref
	for ; r != nil; r = r.Parent() {
		out = append(out, r)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}
