package buildkit

import (
	"context"

	"github.com/lade-build/lade/exporter"
	"github.com/moby/buildkit/client"
	bkexporter "github.com/moby/buildkit/exporter"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/worker/base"
)

// Worker is a BuildKit worker whose image, oci and docker exporters are
// lade's; every other exporter (local, tar) and every other service is the
// wrapped worker's.
type Worker struct {
	*base.Worker
	writer   *exporter.ImageWriter
	rewriter *TimestampRewriter
}

// NewWorker wraps w. One lade ImageWriter is shared by all exports, so
// identical work of concurrent builds runs once.
func NewWorker(w *base.Worker) *Worker {
	return &Worker{
		Worker:   w,
		writer:   exporter.NewImageWriter(w.ContentStore()),
		rewriter: NewTimestampRewriter(w.ContentStore(), w.LeaseManager(), w.CacheManager()),
	}
}

// Prune implements worker.Worker: BuildKit's prune, and when it prunes
// everything (--all, no filter or limit), the rewrite-timestamp blob cache
// too, so that nothing lade kept stays behind.
func (w *Worker) Prune(ctx context.Context, ch chan client.UsageInfo, opt ...client.PruneInfo) error {
	if err := w.Worker.Prune(ctx, ch, opt...); err != nil {
		return err
	}
	for _, o := range opt {
		if o.All && len(o.Filter) == 0 && o.KeepDuration == 0 && o.ReservedSpace == 0 && o.MaxUsedSpace == 0 && o.MinFreeSpace == 0 {
			return w.rewriter.Purge(ctx)
		}
	}
	return nil
}

// Exporter implements worker.Worker.
func (w *Worker) Exporter(name string, sm *session.Manager) (bkexporter.Exporter, error) {
	switch name {
	case client.ExporterImage, client.ExporterOCI, client.ExporterDocker:
		return New(name, Opt{
			SessionManager: sm,
			ContentStore:   w.ContentStore(),
			LeaseManager:   w.LeaseManager(),
			Images:         w.ImageStore,
			RegistryHosts:  w.RegistryHosts,
			Writer:         w.writer,
			Rewriter:       w.rewriter,
			Snapshotter:    w.Snapshotter,
			Applier:        w.Applier,
			Defaults:       DaemonDefaults(),
		})
	}
	return w.Worker.Exporter(name, sm)
}
