package imagestore

import (
	"context"

	"github.com/containerd/containerd/v2/core/content"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// nsContent is a content.Store that runs every call in the Store's
// namespace. The namespace is forced rather than defaulted: a Store holds one
// namespace, so Prune, Check and the blob cache see everything written
// through it whatever namespace a caller's context carried.
type nsContent struct {
	cs content.Store
}

var _ content.Store = nsContent{}

// Info implements content.InfoProvider.
func (c nsContent) Info(ctx context.Context, dgst digest.Digest) (content.Info, error) {
	return c.cs.Info(ns(ctx), dgst)
}

// Update implements content.Manager.
func (c nsContent) Update(ctx context.Context, info content.Info, fieldpaths ...string) (content.Info, error) {
	return c.cs.Update(ns(ctx), info, fieldpaths...)
}

// Walk implements content.Manager.
func (c nsContent) Walk(ctx context.Context, fn content.WalkFunc, filters ...string) error {
	return c.cs.Walk(ns(ctx), fn, filters...)
}

// Delete implements content.Manager.
func (c nsContent) Delete(ctx context.Context, dgst digest.Digest) error {
	return c.cs.Delete(ns(ctx), dgst)
}

// ReaderAt implements content.Provider.
func (c nsContent) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	return c.cs.ReaderAt(ns(ctx), desc)
}

// Status implements content.IngestManager.
func (c nsContent) Status(ctx context.Context, ref string) (content.Status, error) {
	return c.cs.Status(ns(ctx), ref)
}

// ListStatuses implements content.IngestManager.
func (c nsContent) ListStatuses(ctx context.Context, filters ...string) ([]content.Status, error) {
	return c.cs.ListStatuses(ns(ctx), filters...)
}

// Abort implements content.IngestManager.
func (c nsContent) Abort(ctx context.Context, ref string) error {
	return c.cs.Abort(ns(ctx), ref)
}

// Writer implements content.Ingester. The writer's Commit sets the namespace
// itself.
func (c nsContent) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	return c.cs.Writer(ns(ctx), opts...)
}
