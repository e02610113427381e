package main

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	ctd "github.com/containerd/containerd/v2/client"

	"github.com/moby/buildkit/cmd/buildkitd/config"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/solver/llbsolver/cdidevices"
	"github.com/moby/buildkit/util/archutil"
	"github.com/moby/buildkit/util/bklog"
	"github.com/moby/buildkit/util/db/compaction"
	"github.com/moby/buildkit/worker"
	"tags.cncf.io/container-device-interface/pkg/cdi"
)

// workerCommon is what every worker shares with the daemon.
type workerCommon struct {
	sessions    *session.Manager
	cdi         *cdidevices.Manager
	traceSocket string
	compaction  []compaction.Config
}

// newWorkerController creates the enabled workers, as buildkitd selects
// them: the OCI worker when enabled, or on auto when runc is installed;
// the containerd worker when enabled, or on auto when containerd answers
// on its socket. Both may run; the OCI worker, first, is the default.
func newWorkerController(ctx context.Context, cfg *config.Config, differ string, common workerCommon) (*worker.Controller, error) {
	wc := &worker.Controller{}
	add := func(w worker.Worker) error {
		p := w.Platforms(false)
		bklog.L.Infof("found worker %q, labels=%v, platforms=%v", w.ID(), w.Labels(), formatPlatforms(p))
		archutil.WarnIfUnsupported(p)
		return wc.Add(w)
	}
	if enabled(cfg.Workers.OCI.Enabled, validOCIBinary) {
		w, err := newOCIWorker(ctx, cfg, differ, common)
		if err != nil {
			return nil, err
		}
		if err := add(w); err != nil {
			return nil, err
		}
	}
	cc := cfg.Workers.Containerd
	if containerdWorkerEnabled(cc) && (cc.Enabled != nil || containerdAnswers(ctx, cc)) {
		if cc.HyperVIsolation {
			bklog.L.Warn("containerd worker: Hyper-V isolation applies to Windows containers only and is ignored here")
		}
		w, err := newContainerdWorker(ctx, cfg, differ, common)
		if err != nil {
			return nil, err
		}
		if err := add(w); err != nil {
			return nil, err
		}
	}
	def, err := wc.GetDefault()
	if err != nil {
		return nil, errors.New("no worker found: enable the OCI worker (--oci-worker=true, needs runc) or the containerd worker (--containerd-worker=true, needs containerd's socket)")
	}
	bklog.L.Infof("found %d workers, default=%q", len(mustWorkers(wc)), def.ID())
	return wc, nil
}

// mustWorkers lists the controller's workers.
func mustWorkers(wc *worker.Controller) []worker.Worker {
	ws, _ := wc.List()
	return ws
}

// enabled decides a true/false/auto switch; auto asks available.
func enabled(on *bool, available func() bool) bool {
	if on != nil {
		return *on
	}
	return available()
}

// validOCIBinary reports whether runc (or buildkit-runc) is installed.
func validOCIBinary() bool {
	_, err := exec.LookPath("runc")
	_, err1 := exec.LookPath("buildkit-runc")
	if err != nil && err1 != nil {
		bklog.L.Warnf("skipping oci worker, as runc does not exist")
		return false
	}
	return true
}

// containerdAnswers reports whether containerd answers on the configured
// unix socket (a tcp address is taken on trust), as buildkitd checks
// before it starts a containerd worker on auto: a socket the daemon cannot
// use (a rootless daemon and the system's containerd) skips the worker.
func containerdAnswers(ctx context.Context, cc config.ContainerdConfig) bool {
	if strings.HasPrefix(cc.Address, "tcp://") {
		return true
	}
	path := strings.TrimPrefix(cc.Address, "unix://")
	c, err := ctd.New(path, ctd.WithDefaultNamespace(cc.Namespace), ctd.WithTimeout(10*time.Second))
	if err != nil {
		bklog.L.Warnf("skipping containerd worker, as failed to connect client to %q: %v", path, err)
		return false
	}
	defer c.Close()
	if _, err := c.Server(ctx); err != nil {
		bklog.L.Warnf("skipping containerd worker, as failed to call introspection API on %q: %v", path, err)
		return false
	}
	return true
}

// cdiManager loads the CDI specs of [cdi] (nil when CDI is disabled).
func cdiManager(c config.CDIConfig) (*cdidevices.Manager, error) {
	if c.Disabled != nil && *c.Disabled {
		return nil, nil
	}
	if len(c.SpecDirs) == 0 {
		return nil, errors.New("no CDI specification directories specified: set [cdi] specDirs or --cdi-spec-dir, or disable CDI with --cdi-disabled")
	}
	cache, err := cdi.NewCache(cdi.WithSpecDirs(c.SpecDirs...))
	if err != nil {
		return nil, fmt.Errorf("CDI registry initialization failure: %w", err)
	}
	if err := cache.Refresh(); err != nil {
		return nil, fmt.Errorf("CDI registry initialization failure: %w", err)
	}
	for dir, errs := range cache.GetErrors() {
		for _, err := range errs {
			bklog.L.Warnf("CDI setup error %v: %+v", dir, err)
		}
	}
	return cdidevices.NewManager(cache, c.AutoAllowed), nil
}
