// Package commit commits a root filesystem directory on top of a base image,
// as docker commit does for a container: the base is unpacked into a
// temporary directory, the new layer is the diff of the directory against
// it, and the image is the base's layers (reused as they are) plus that one
// layer. The config is the base's with Dockerfile-style changes applied
// (ENV, CMD, ENTRYPOINT, WORKDIR, USER, LABEL, EXPOSE, VOLUME, ...), and the
// history gets one entry with author, comment and created-by. A directory
// with no change gives no layer and an empty_layer history entry.
//
// The package does not import BuildKit.
package commit

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lade-build/lade/blobs"
	"github.com/lade-build/lade/cache"
	"github.com/lade-build/lade/exporter"
	"github.com/lade-build/lade/exporter/unpack"
	"github.com/lade-build/lade/progress"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// DefaultCreatedBy is the history created_by of a commit without changes.
const DefaultCreatedBy = "lade commit"

// Options are the optional inputs of Commit. The zero value is valid.
type Options struct {
	// Author is the history entry's and the config's author; empty keeps
	// the base's author, as docker commit does.
	Author string
	// Message is the history entry's comment.
	Message string
	// Changes are Dockerfile instructions applied to the config (see
	// ParseChanges).
	Changes []string
	// CreatedBy is the history entry's created_by; empty means the changes
	// joined with "; ", or DefaultCreatedBy when there are none.
	CreatedBy string
	// Platform picks the base manifest of an index; nil means the host's.
	Platform *ocispec.Platform
	// Docker writes Docker schema 2 media types instead of OCI.
	Docker bool
	// Compression of the new layer; the zero value is lade's default gzip.
	Compression blobs.Compression
	// Soci, SociSpanSize and SociMinLayerSize give the image zTOCs and a
	// SOCI index (see exporter.Options.Soci).
	Soci                           bool
	SociSpanSize, SociMinLayerSize int64
	// Created is the time of the image and of its history entry; zero
	// means now. With Epoch, both are clamped to it.
	Created time.Time
	// Epoch is SOURCE_DATE_EPOCH (see exporter.Options.Epoch).
	Epoch *time.Time
	// TempDir holds the unpacked base while the commit runs; empty means
	// os.TempDir().
	TempDir string
	// NoSameOwner unpacks the base owned by the caller (for unprivileged
	// use, where the rootfs is owned by the caller too).
	NoSameOwner bool
	// Concurrency, Cache, Locker and Progress are passed to the exporter.
	Concurrency int
	Cache       blobs.Cache
	Locker      blobs.Locker
	Progress    progress.Writer
}

// Result is what Commit returns.
type Result struct {
	exporter.Result
	// Empty is true when the directory held no change: the image has no
	// new layer and its last history entry is empty_layer.
	Empty bool `json:"empty,omitempty"`
	// Warnings are the defaults Commit had to assume (e.g. a base config
	// without architecture).
	Warnings []string `json:"warnings,omitempty"`
}

// Commit writes into store the image made of base (a manifest, or an index
// and opts.Platform; a zero descriptor means no base) and the changes of
// the directory rootfs against it, and returns the new manifest's
// descriptor with per-layer metadata. The base must be in store. rootfs
// must not change while Commit runs. The caller holds a lease when store
// collects garbage, and names the result.
func Commit(ctx context.Context, store exporter.Store, base ocispec.Descriptor, rootfs string, opts Options) (Result, error) {
	changes, err := ParseChanges(opts.Changes)
	if err != nil {
		return Result{}, err
	}
	if fi, err := os.Stat(rootfs); err != nil || !fi.IsDir() {
		return Result{}, fmt.Errorf("rootfs %s: not a directory (%v)", rootfs, err)
	}
	b, err := LoadBase(ctx, store, base, opts.Platform)
	if err != nil {
		return Result{}, err
	}
	created := opts.Created
	if created.IsZero() {
		created = time.Now()
	}
	created = created.UTC()
	createdBy := opts.CreatedBy
	if createdBy == "" {
		createdBy = describeChanges(changes)
	}
	entry := ocispec.History{Created: &created, CreatedBy: createdBy, Author: opts.Author, Comment: opts.Message}
	cfg, err := newConfig(b, changes, entry)
	if err != nil {
		return Result{}, err
	}
	lower, cleanup, err := unpackBase(ctx, store, b, opts)
	if err != nil {
		return Result{}, err
	}
	defer cleanup()
	top, err := cache.NewDirRef(rootfs, b.Top, cache.DirOptions{Lower: lower, Description: createdBy, CreatedAt: created})
	if err != nil {
		return Result{}, err
	}
	src := exporter.Source{Platforms: []exporter.PlatformSource{{
		Platform: cfg.platform, Ref: top, Config: cfg.json, BaseHistory: cfg.baseHistory,
	}}}
	res, err := exporter.NewImageWriter(store).Commit(ctx, src, exporter.Options{
		Docker: opts.Docker, Compression: opts.Compression, Epoch: opts.Epoch,
		Soci: opts.Soci, SociSpanSize: opts.SociSpanSize, SociMinLayerSize: opts.SociMinLayerSize,
		Concurrency: opts.Concurrency, Cache: opts.Cache, Locker: opts.Locker, Progress: opts.Progress,
	})
	if err != nil {
		return Result{}, err
	}
	out := Result{Result: res, Warnings: cfg.warnings}
	if ls := res.Platforms[0].Layers; len(ls) > 0 && ls[len(ls)-1].Dropped {
		out.Empty = true
	}
	return out, nil
}

// describeChanges is the default created_by: the changes, or
// DefaultCreatedBy.
func describeChanges(changes []Change) string {
	if len(changes) == 0 {
		return DefaultCreatedBy
	}
	parts := make([]string, len(changes))
	for i, c := range changes {
		parts[i] = c.String()
	}
	return strings.Join(parts, "; ")
}

// unpackBase unpacks the base's layers into a temporary directory and
// returns it as the lower snapshot of the new layer (nil for a base without
// layers: the layer is then the whole directory) and a function removing it.
func unpackBase(ctx context.Context, store exporter.Store, b Base, opts Options) (*cache.DirRef, func(), error) {
	if b.Top == nil {
		return nil, func() {}, nil
	}
	tmp, err := os.MkdirTemp(opts.TempDir, "lade-commit-")
	if err != nil {
		return nil, nil, fmt.Errorf("unpack base: %w", err)
	}
	cleanup := func() { _ = os.RemoveAll(tmp) }
	dir := filepath.Join(tmp, "rootfs")
	pw := progress.OrDiscard(opts.Progress)
	task := progress.Start(pw, "unpack-base:"+b.Manifest.Digest.String(), "unpacking base "+b.Manifest.Digest.String(), 0)
	err = unpack.Unpack(ctx, store, b.Manifest, dir, unpack.Options{NoSameOwner: opts.NoSameOwner})
	task.Done("", err)
	if err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("unpack base: %w", err)
	}
	lower, err := cache.NewDirRef(dir, nil, cache.DirOptions{Description: "base " + b.Manifest.Digest.String()})
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return lower, cleanup, nil
}
