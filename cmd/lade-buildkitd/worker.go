package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	ctddocker "github.com/containerd/containerd/v2/core/remotes/docker"
	ctdsnapshot "github.com/containerd/containerd/v2/core/snapshots"
	snproxy "github.com/containerd/containerd/v2/core/snapshots/proxy"
	"github.com/containerd/containerd/v2/defaults"
	"github.com/containerd/containerd/v2/pkg/dialer"
	"github.com/containerd/containerd/v2/plugins/diff/walking"
	"github.com/containerd/containerd/v2/plugins/snapshots/native"
	"github.com/containerd/containerd/v2/plugins/snapshots/overlay"
	"github.com/containerd/containerd/v2/plugins/snapshots/overlay/overlayutils"
	fuseoverlayfs "github.com/containerd/fuse-overlayfs-snapshotter/v2"
	"github.com/containerd/platforms"
	"github.com/lade-build/lade/buildkit"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/cmd/buildkitd/config"
	bkoci "github.com/moby/buildkit/executor/oci"
	dockerfileversion "github.com/moby/buildkit/frontend/dockerfile/version"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/util/archutil"
	"github.com/moby/buildkit/util/bklog"
	"github.com/moby/buildkit/util/disk"
	"github.com/moby/buildkit/util/network/cniprovider"
	"github.com/moby/buildkit/util/network/netproviders"
	"github.com/moby/buildkit/util/resolver"
	"github.com/moby/buildkit/util/winlayers"
	"github.com/moby/buildkit/version"
	"github.com/moby/buildkit/worker/base"
	"github.com/moby/buildkit/worker/runc"
	sysuser "github.com/moby/sys/user"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/semaphore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
)

// newOCIWorker creates the OCI worker (runc) from [worker.oci] and wraps
// it so that its image, oci and docker exporters are lade's. cdi and
// traceSocket are the daemon's device manager and trace socket.
func newOCIWorker(ctx context.Context, cfg *config.Config, differ string, common workerCommon) (*buildkit.Worker, error) {
	oc := &cfg.Workers.OCI
	idmap, err := identityMapping(oc.UserRemapUnsupported)
	if err != nil {
		return nil, err
	}
	hosts := resolver.NewRegistryConfig(cfg.Registries)
	sn, err := snapshotterFactory(cfg.Root, oc, hosts, common.sessions)
	if err != nil {
		return nil, err
	}
	if oc.Rootless {
		bklog.L.Debugf("running in rootless mode")
		if oc.Mode == "auto" {
			oc.Mode = "host"
		}
	}
	processMode := bkoci.ProcessSandbox
	if oc.NoProcessSandbox {
		bklog.L.Warn("NoProcessSandbox is enabled: build containers share the daemon's PID namespace and can kill (and potentially ptrace) any process in it; enable it only when the daemon runs in a container as an unprivileged user")
		if !oc.Rootless {
			return nil, errors.New("can't enable NoProcessSandbox without Rootless: add --rootless (or --oci-worker-rootless) under rootlesskit")
		}
		processMode = bkoci.NoProcessSandbox
	}
	nopt := netproviders.Opt{Mode: oc.Mode, CNI: cniprovider.Opt{
		Root: cfg.Root, ConfigPath: oc.CNIConfigPath, BinaryDir: oc.CNIBinaryPath,
		PoolSize: oc.CNIPoolSize, BridgeName: oc.BridgeName, BridgeSubnet: oc.BridgeSubnet,
	}}
	opt, err := runc.NewWorkerOpt(cfg.Root, sn, oc.Rootless, processMode, oc.Labels, idmap, nopt, dnsConfig(cfg.DNS),
		oc.Binary, oc.ApparmorProfile, oc.SELinux, parallelism(oc.MaxParallelism), common.traceSocket, oc.DefaultCgroupParent, common.cdi, common.compaction...)
	if err != nil {
		return nil, err
	}
	if opt.Platforms, err = workerPlatforms(oc.Platforms); err != nil {
		return nil, err
	}
	w, err := startWorker(ctx, opt, oc.GCConfig, cfg.Root, hosts, differ)
	if err != nil {
		return nil, err
	}
	bklog.L.Infof("OCI worker %s: snapshotter %s, platforms %v, %s differ, exporters image/oci/docker by lade", w.ID(), sn.Name, formatPlatforms(opt.Platforms), differ)
	return buildkit.NewWorker(w), nil
}

// parallelism is the semaphore of a worker's max-parallelism (nil: no limit).
func parallelism(n int) *semaphore.Weighted {
	if n <= 0 {
		return nil
	}
	return semaphore.NewWeighted(int64(n))
}

// buildkitVersion is the version the workers report to clients.
func buildkitVersion() client.BuildkitVersion {
	return client.BuildkitVersion{
		Package: version.Package, Version: version.Version, Revision: version.Revision,
		DockerfileVersion: dockerfileversion.Version(),
	}
}

// identityMapping loads the subuid/subgid ranges of a user named in
// userRemapUnsupported ("user[:group]"), as buildkitd does.
func identityMapping(spec string) (*sysuser.IdentityMapping, error) {
	if spec == "" {
		return nil, nil
	}
	parts := strings.SplitN(spec, ":", 3)
	if len(parts) > 2 {
		return nil, fmt.Errorf("invalid userns remap specification in %q: use USER[:GROUP]", spec)
	}
	m, err := sysuser.LoadIdentityMapping(parts[0])
	if err != nil {
		return nil, fmt.Errorf("failed to create ID mappings for %s: %w", parts[0], err)
	}
	return &m, nil
}

// The layer differs --differ chooses from.
const (
	differLade     = "lade"
	differBuildKit = "buildkit"
)

// forceOverlayDiffEnv is BuildKit's switch of its overlayfs differ (cache/
// blobs.go): "false" sends every layer but those of llb.Diff to the
// worker's differ.
const forceOverlayDiffEnv = "BUILDKIT_DEBUG_FORCE_OVERLAY_DIFF"

// useDiffer installs the layer differ: with "lade", lade's Differ becomes
// the worker's (behind BuildKit's Windows-layer wrapper) and BuildKit's
// own overlayfs differ is switched off, since lade's Differ diffs overlay
// upperdirs itself; with "buildkit", the worker keeps BuildKit's differs.
func useDiffer(name string, opt *base.WorkerOpt) error {
	switch name {
	case differBuildKit:
		return nil
	case differLade:
	default:
		return fmt.Errorf("--differ %q: use %s or %s", name, differLade, differBuildKit)
	}
	if v := os.Getenv(forceOverlayDiffEnv); v != "" {
		if on, err := strconv.ParseBool(v); err != nil || on {
			// BuildKit's test harness sets it to make sure layers of
			// overlayfs snapshots are diffed from their upperdirs; lade's
			// differ does that itself, so it stays the differ.
			bklog.L.Infof("%s=%s: lade's differ diffs overlayfs upperdirs itself and stays the layer differ (--differ %s keeps BuildKit's)",
				forceOverlayDiffEnv, v, differBuildKit)
		}
	}
	if err := os.Setenv(forceOverlayDiffEnv, "false"); err != nil {
		return err
	}
	cs := opt.ContentStore
	opt.Differ = winlayers.NewWalkingDiffWithWindows(cs, buildkit.NewDiffer(cs, walking.NewWalkingDiff(cs)))
	return nil
}

// snapshotterFactory returns the snapshotter of [worker.oci] (auto picks
// overlayfs, then fuse-overlayfs, then native, by what the root's file
// system supports), or a proxy to the snapshotter serving
// proxySnapshotterPath; stargz pulls lazily through hosts and the build's
// sessions.
func snapshotterFactory(root string, oc *config.OCIConfig, hosts ctddocker.RegistryHosts, sm *session.Manager) (runc.SnapshotterFactory, error) {
	name := oc.Snapshotter
	if oc.ProxySnapshotterPath != "" {
		return proxySnapshotter(name, oc.ProxySnapshotterPath)
	}
	if name == "auto" || name == "" {
		name = autoSnapshotter(root)
	}
	f := runc.SnapshotterFactory{Name: name}
	switch name {
	case "overlayfs":
		f.New = func(root string) (ctdsnapshot.Snapshotter, error) {
			return overlay.NewSnapshotter(root, overlay.AsynchronousRemove)
		}
	case "fuse-overlayfs":
		f.New = func(root string) (ctdsnapshot.Snapshotter, error) { return fuseoverlayfs.NewSnapshotter(root) }
	case "native":
		f.New = native.NewSnapshotter
	case "stargz":
		var err error
		if f.New, err = stargzSnapshotter(oc.StargzSnapshotterConfig, hosts, sm); err != nil {
			return f, err
		}
	default:
		return f, fmt.Errorf("unknown snapshotter name: %q: use auto, overlayfs, fuse-overlayfs, native or stargz", name)
	}
	return f, nil
}

// autoSnapshotter picks the snapshotter the root's file system supports.
func autoSnapshotter(root string) string {
	name := "native"
	if err := overlayutils.Supported(root); err == nil {
		name = "overlayfs"
	} else if err2 := fuseoverlayfs.Supported(root); err2 == nil {
		name = "fuse-overlayfs"
	} else {
		bklog.L.Debugf("auto snapshotter: neither overlayfs (%v) nor fuse-overlayfs (%v) works on %s", err, err2, root)
	}
	bklog.L.Infof("auto snapshotter: using %s", name)
	return name
}

// proxySnapshotter connects to an external snapshotter's socket.
func proxySnapshotter(name, path string) (runc.SnapshotterFactory, error) {
	f := runc.SnapshotterFactory{Name: name}
	if _, err := os.Stat(path); err != nil {
		return f, fmt.Errorf("snapshotter doesn't exist on %q (do not include the 'unix://' prefix): %w", path, err)
	}
	f.New = func(string) (ctdsnapshot.Snapshotter, error) {
		bo := backoff.DefaultConfig
		bo.MaxDelay = 3 * time.Second
		conn, err := grpc.NewClient(dialer.DialAddress(path),
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithConnectParams(grpc.ConnectParams{Backoff: bo}),
			grpc.WithContextDialer(dialer.ContextDialer),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(defaults.DefaultMaxRecvMsgSize), grpc.MaxCallSendMsgSize(defaults.DefaultMaxSendMsgSize)))
		if err != nil {
			return nil, fmt.Errorf("failed to dial snapshotter %q: %w", path, err)
		}
		return snproxy.NewSnapshotter(snapshotsapi.NewSnapshotsClient(conn), name), nil
	}
	return f, nil
}

// dnsConfig converts the config's DNS section.
func dnsConfig(c *config.DNSConfig) *bkoci.DNSConfig {
	if c == nil {
		return nil
	}
	return &bkoci.DNSConfig{Nameservers: c.Nameservers, Options: c.Options, SearchDomains: c.SearchDomains}
}

// gcPolicy returns the worker's cache GC rules, buildkitd's defaults when
// the config has none.
func gcPolicy(cfg config.GCConfig, root string) []client.PruneInfo {
	if cfg.GC != nil && !*cfg.GC {
		return nil
	}
	dstat, _ := disk.GetDiskStat(root)
	if len(cfg.GCPolicy) == 0 {
		cfg.GCPolicy = config.DefaultGCPolicy(cfg, dstat)
	}
	out := make([]client.PruneInfo, 0, len(cfg.GCPolicy))
	for _, r := range cfg.GCPolicy {
		//nolint:staticcheck // KeepBytes is the old name of ReservedSpace
		if r.ReservedSpace == (config.DiskSpace{}) && r.KeepBytes != (config.DiskSpace{}) {
			r.ReservedSpace = r.KeepBytes //nolint:staticcheck
		}
		out = append(out, client.PruneInfo{
			Filter: r.Filters, All: r.All, KeepDuration: r.KeepDuration.Duration,
			ReservedSpace: r.ReservedSpace.AsBytes(dstat), MaxUsedSpace: r.MaxUsedSpace.AsBytes(dstat),
			MinFreeSpace: r.MinFreeSpace.AsBytes(dstat),
		})
	}
	return out
}

// workerPlatforms parses the configured platforms, defaulting to the host's
// and those its emulators run.
func workerPlatforms(in []string) ([]ocispecs.Platform, error) {
	if len(in) == 0 {
		return archutil.SupportedPlatforms(false), nil
	}
	out := make([]ocispecs.Platform, 0, len(in))
	for _, s := range in {
		p, err := platforms.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("invalid worker platform %q: %w", s, err)
		}
		out = append(out, platforms.Normalize(p))
	}
	return out, nil
}

func formatPlatforms(ps []ocispecs.Platform) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, platforms.Format(p))
	}
	return out
}

// startWorker completes a worker's options the same way for every worker
// kind (cache GC rules, BuildKit's version, registry hosts, the layer
// differ) and starts it.
func startWorker(ctx context.Context, opt base.WorkerOpt, gc config.GCConfig, root string, hosts ctddocker.RegistryHosts, differ string) (*base.Worker, error) {
	opt.GCPolicy = gcPolicy(gc, root)
	opt.BuildkitVersion = buildkitVersion()
	opt.RegistryHosts = hosts
	if err := useDiffer(differ, &opt); err != nil {
		return nil, err
	}
	return base.NewWorker(ctx, opt)
}
