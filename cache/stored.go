package cache

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/containerd/containerd/v2/core/content"
)

// StoredOptions are the optional inputs of NewStoredRef. The zero value is
// valid.
type StoredOptions struct {
	// Description is the history "created_by" for the layer (for a base
	// image layer, from the base image's history); empty means
	// "lade: blob <digest>".
	Description string
	// CreatedAt is the history "created" for the layer; zero when unknown.
	CreatedAt time.Time
}

// StoredRef is a layer whose blob is already in a content store, such as a
// base-image layer. It implements Ref and Layer.
type StoredRef struct {
	provider content.Provider
	blob     Blob
	parent   Ref
	opts     StoredOptions
	comp     compression
}

var (
	_ Ref   = (*StoredRef)(nil)
	_ Layer = (*StoredRef)(nil)
)

// NewStoredRef returns the layer blob read from provider on top of parent
// (nil at the bottom). The blob's digest, size, diffID and media type (an
// OCI or Docker tar, tar+gzip or tar+zstd layer) are required.
func NewStoredRef(provider content.Provider, blob Blob, parent Ref, opts StoredOptions) (*StoredRef, error) {
	desc := blob.Descriptor
	if provider == nil {
		return nil, fmt.Errorf("stored blob %s: no content provider", desc.Digest)
	}
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("stored blob: digest %q: %w", desc.Digest, err)
	}
	if desc.Size < 0 {
		return nil, fmt.Errorf("stored blob %s: negative size %d", desc.Digest, desc.Size)
	}
	if err := blob.DiffID.Validate(); err != nil {
		return nil, fmt.Errorf("stored blob %s: diffID %q: %w", desc.Digest, blob.DiffID, err)
	}
	comp, err := compressionOfMediaType(desc.MediaType)
	if err != nil {
		return nil, fmt.Errorf("stored blob %s: %w", desc.Digest, err)
	}
	if opts.Description == "" {
		opts.Description = "lade: blob " + desc.Digest.String()
	}
	return &StoredRef{provider: provider, blob: blob, parent: parent, opts: opts, comp: comp}, nil
}

// ID returns "blob:" and the blob's digest.
func (r *StoredRef) ID() string { return "blob:" + r.blob.Descriptor.Digest.String() }

// Parent returns the ref below, nil at the bottom.
func (r *StoredRef) Parent() Ref { return r.parent }

// Description returns the history "created_by" of the layer.
func (r *StoredRef) Description() string { return r.opts.Description }

// CreatedAt returns the history "created" of the layer, zero when unknown.
func (r *StoredRef) CreatedAt() time.Time { return r.opts.CreatedAt }

// Layer returns r itself.
func (r *StoredRef) Layer() Layer { return r }

// Stored returns the blob, ok=true.
func (r *StoredRef) Stored() (Blob, bool) { return r.blob, true }

// Size returns the blob's (compressed) size: the uncompressed size is
// unknown until read.
func (r *StoredRef) Size() int64 { return r.blob.Descriptor.Size }

// Diff reads the blob and streams its decompressed tar, with the same entry
// validation and timestamp clamping as TarballRef.Diff. At EOF it verifies
// the blob's size and digest and the diffID of its tar; a mismatch is an
// error matching ErrDigestMismatch.
func (r *StoredRef) Diff(ctx context.Context, opts DiffOptions) (io.ReadCloser, error) {
	desc := r.blob.Descriptor
	ra, err := r.provider.ReaderAt(ctx, desc)
	if err != nil {
		return nil, fmt.Errorf("blob %s: open: %w", desc.Digest, err)
	}
	if ra.Size() != desc.Size {
		_ = ra.Close()
		return nil, &classError{fmt.Sprintf("blob %s: %d bytes in the store, expected %d", desc.Digest, ra.Size(), desc.Size), ErrSizeMismatch}
	}
	epoch := cloneTime(opts.Epoch)
	return newPipeStream(ctx, func(ctx context.Context, w io.Writer) error {
		defer ra.Close()
		return decodeLayer(ctx, w, content.NewReader(ra), layerDecode{
			Name:        "blob " + desc.Digest.String(),
			Compression: r.comp,
			Blob:        desc.Digest,
			BlobSize:    desc.Size,
			DiffID:      r.blob.DiffID,
			Epoch:       epoch,
		})
	}), nil
}
