package buildkit

import (
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
