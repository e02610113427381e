// Package buildkit adapts lade's image exporter to BuildKit: it implements
// BuildKit v0.34's exporter.Exporter for the image, oci and docker output
// types, so that a buildkitd whose worker uses it (lade-buildkitd) writes
// images with lade while the stock buildctl and buildx drive it unchanged.
//
// Layer blobs stay BuildKit's: the refs' blobs are computed by BuildKit's own
// blob pipeline (overlay upperdir differ, flightcontrol, leases, compression
// variants, GC labels) with lade's compressors plugged in as BuildKit
// compression types, so every ref keeps one blob that the image, the inline
// cache and --export-cache all share. lade's ImageWriter then normalizes
// history against the layers (dropping empty ones), patches the config and
// writes manifests and the index into the worker's content store under a
// lease. Inline cache layer indices are remapped after normalization.
//
// With rewrite-timestamp and an epoch, the new layers are the exception:
// lade diffs them itself from the refs' mounted snapshots (the overlay
// upperdir, or both trees) with file times clamped as the tar is written,
// hashed and compressed in the same pass (TimestampRewriter), instead of
// BuildKit's blob pipeline followed by its converter.
// Attestations are written as attestation manifests in the index, as
// BuildKit does.
//
// Attributes are parsed as BuildKit reads them: a near-miss of a known key
// fails the build naming that key; other unknown keys pass through to the
// export as metadata, with a warning in the build's progress.
//
// The differ (differ.go) and the timestamp rewriter (rewrite.go,
// rewrite_source.go, rewrite_cache.go) share the change walkers of
// changes.go, which report a layer's changes from mounted snapshots as
// BuildKit's differs see them.
//
// Import names, here and in cmd/lade-buildkitd: a name means one package in
// every file, and a package has one name. lade's packages keep their own
// names (cache, progress, exporter, oci, docker, archive). A BuildKit
// package never takes a name another imported package has: it takes the
// prefix bk (bkcache, bkprogress, bkexporter, bkcompression, bkepoch, bkoci,
// bkoverlay, bkidentity), or the alias BuildKit's own code gives it
// (cacheconfig, localremotecache, sessioncontent). A containerd package
// whose name a package from elsewhere has (BuildKit's aside) takes ctd
// (ctdarchive, ctddocker, ctdreference); containerd's client is ctd. Any
// other package sharing a standard library package's name takes its parent
// folder (nettrace, sysuser). The image spec is ocispecs. imports_test.go
// checks this.
package buildkit

import (
	"context"
	"fmt"

	"github.com/containerd/containerd/v2/core/diff"
	"github.com/containerd/containerd/v2/core/images"
	ctddocker "github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/lade-build/lade/exporter"
	"github.com/lade-build/lade/internal/attrs"
	"github.com/moby/buildkit/client"
	bkexporter "github.com/moby/buildkit/exporter"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/snapshot"
	containerdsnapshot "github.com/moby/buildkit/snapshot/containerd"
	"github.com/moby/buildkit/util/leaseutil"
)

// Opt are the worker's services an Exporter uses.
type Opt struct {
	// SessionManager reaches the client: registry credentials, the tar
	// stream of oci and docker outputs.
	SessionManager *session.Manager
	// ContentStore is the worker's content store (namespaced, with GC).
	ContentStore *containerdsnapshot.Store
	// LeaseManager protects what an export writes until it is named or
	// pushed.
	LeaseManager *leaseutil.Manager
	// Images is the worker's image store; nil for the OCI worker, which
	// has none (names are then only pushed, as in stock BuildKit).
	Images images.Store
	// RegistryHosts configures registries for push.
	RegistryHosts ctddocker.RegistryHosts
	// Writer is lade's image writer over ContentStore; nil makes one.
	Writer *exporter.ImageWriter
	// Rewriter makes the new layers of rewrite-timestamp exports; nil
	// makes one without a cache manager.
	Rewriter *TimestampRewriter
	// Snapshotter and Applier unpack a named image for unpack=true (the
	// containerd worker's snapshotter and applier); unpack needs both.
	Snapshotter snapshot.Snapshotter
	Applier     diff.Applier
	// Defaults are the daemon's defaults for attributes an export leaves
	// unset (compat.go).
	Defaults Defaults
}

// Exporter is a BuildKit exporter of one type (image, oci or docker)
// backed by lade.
type Exporter struct {
	opt Opt
	typ string
}

var _ bkexporter.Exporter = (*Exporter)(nil)

// New returns an Exporter for typ, one of client.ExporterImage,
// client.ExporterOCI and client.ExporterDocker.
func New(typ string, opt Opt) (*Exporter, error) {
	switch typ {
	case client.ExporterImage, client.ExporterOCI, client.ExporterDocker:
	default:
		return nil, fmt.Errorf("lade exports %s, %s and %s, not %q", client.ExporterImage, client.ExporterOCI, client.ExporterDocker, typ)
	}
	if opt.ContentStore == nil || opt.LeaseManager == nil || opt.SessionManager == nil {
		return nil, fmt.Errorf("lade %s exporter: content store, lease manager and session manager are required", typ)
	}
	if opt.Writer == nil {
		opt.Writer = exporter.NewImageWriter(opt.ContentStore)
	}
	if opt.Rewriter == nil {
		opt.Rewriter = NewTimestampRewriter(opt.ContentStore, opt.LeaseManager, nil)
	}
	return &Exporter{opt: opt, typ: typ}, nil
}

// Resolve implements BuildKit's exporter.Exporter: it parses the output's
// attributes strictly and returns the instance that exports one build.
func (e *Exporter) Resolve(_ context.Context, id int, attrsIn map[string]string) (bkexporter.ExporterInstance, error) {
	s, err := parseSettings(e.typ, attrsIn, e.opt.Defaults)
	if err != nil {
		return nil, err
	}
	return &instance{e: e, id: id, attrs: attrsIn, s: s}, nil
}

// instance is one resolved output of one build.
type instance struct {
	e     *Exporter
	id    int
	attrs map[string]string
	s     *settings
}

// ID implements ExporterInstance.
func (i *instance) ID() int { return i.id }

// Name implements ExporterInstance: the name of the progress vertex,
// BuildKit's, which clients and BuildKit's own tests look for (lade's steps
// inside it say "lade").
func (i *instance) Name() string {
	if i.e.typ == client.ExporterImage {
		return "exporting to image"
	}
	return fmt.Sprintf("exporting to %s image format", i.e.typ)
}

// Config implements ExporterInstance: the compression BuildKit uses for the
// refs' blobs, also when it prepares the inline cache.
func (i *instance) Config() *bkexporter.Config {
	return bkexporter.NewConfigWithCompression(i.s.refCfg.Compression)
}

// Type implements ExporterInstance.
func (i *instance) Type() string { return i.e.typ }

// Attrs implements ExporterInstance.
func (i *instance) Attrs() map[string]string { return i.attrs }

// isImage reports whether the instance is type=image.
func (i *instance) isImage() bool { return i.e.typ == attrs.TypeImage }
