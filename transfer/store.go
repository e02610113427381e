package transfer

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"strings"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/pkg/labels"
	"github.com/containerd/errdefs"
	"github.com/lade-build/lade/exporter/archive"
	"github.com/lade-build/lade/internal/writeback"
	"github.com/lade-build/lade/progress"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Done statuses of Import's progress vertices.
const (
	// StatusCopied: the blob was read from the source and written.
	StatusCopied = "copied"
	// StatusExists: the store had the blob; it was not read.
	StatusExists = "exists"
)

// Import copies root and everything it references from p into store,
// children before parents, each blob once, with one progress vertex per
// blob ("copying layer sha256:...", its bytes as they are read). A blob the
// store already has is not read. Indexes and manifests are verified as
// they are read, other blobs while they stream; a blob is committed only
// with its expected digest and size, so a killed import leaves at most an
// uncommitted ingest, which the next one restarts. Indexes and manifests
// get containerd GC labels for their children; every blob keeps the
// distribution-source labels p reports (a registry's), so a later push to
// the same registry mounts it. The caller's ctx should carry a lease.
func Import(ctx context.Context, p content.Provider, root ocispec.Descriptor, store content.Store, pw progress.Writer) error {
	g, err := archive.Walk(ctx, p, root)
	if err != nil {
		return err
	}
	pw = progress.OrDiscard(pw)
	return archive.ForEachLevel(ctx, g.Blobs, func(ctx context.Context, b archive.Blob) error {
		task := archive.StartTask(pw, "copy", "copying", b.Desc)
		status, err := importBlob(ctx, p, b, store, task)
		if err != nil {
			err = fmt.Errorf("copy %s %s: %w", archive.Kind(b.Desc.MediaType), b.Desc.Digest, err)
		}
		return archive.Finish(task, status, err)
	})
}

// importBlob writes one blob unless the store has it.
func importBlob(ctx context.Context, p content.Provider, b archive.Blob, store content.Store, task *progress.Task) (string, error) {
	if _, err := store.Info(ctx, b.Desc.Digest); err == nil {
		return StatusExists, nil
	} else if !errdefs.IsNotFound(err) {
		return "", err
	}
	lbls := sourceLabels(ctx, p, b.Desc)
	if b.Data != nil {
		maps.Copy(lbls, archive.GCLabels(b.Children))
		err := content.WriteBlob(ctx, store, "lade-copy-"+b.Desc.Digest.String(), bytes.NewReader(b.Data), b.Desc, content.WithLabels(lbls))
		task.Add(b.Desc.Size)
		return StatusCopied, err
	}
	cw, err := content.OpenWriter(ctx, store, content.WithRef("lade-copy-"+b.Desc.Digest.String()), content.WithDescriptor(b.Desc))
	if errdefs.IsAlreadyExists(err) {
		return StatusExists, nil
	}
	if err != nil {
		return "", fmt.Errorf("open store writer: %w", err)
	}
	w := writeback.Wrap(cw, 0)
	defer w.Close()
	// A partial ingest of a killed copy is restarted: its bytes were never
	// verified against the whole digest.
	if err := w.Truncate(0); err != nil {
		return "", fmt.Errorf("restart ingest: %w", err)
	}
	if err := archive.CopyBlob(ctx, p, b.Desc, w, task.Add); err != nil {
		w.Close()
		// Keep nothing of a blob that failed: wrong bytes must not be resumed.
		_ = store.Abort(context.WithoutCancel(ctx), "lade-copy-"+b.Desc.Digest.String())
		return "", err
	}
	err = w.Commit(ctx, b.Desc.Size, b.Desc.Digest, content.WithLabels(lbls))
	if errdefs.IsAlreadyExists(err) {
		return StatusExists, nil
	}
	return StatusCopied, err
}

// sourceLabels returns the distribution-source labels p has for desc.
func sourceLabels(ctx context.Context, p content.Provider, desc ocispec.Descriptor) map[string]string {
	out := map[string]string{}
	ip, ok := p.(content.InfoProvider)
	if !ok {
		return out
	}
	info, err := ip.Info(ctx, desc.Digest)
	if err != nil {
		return out
	}
	for k, v := range info.Labels {
		if strings.HasPrefix(k, labels.LabelDistributionSource+".") {
			out[k] = v
		}
	}
	return out
}
