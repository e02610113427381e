package main

import (
	"context"
	"fmt"
	"os"
	"strconv"

	ctdsnapshot "github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/plugins/diff/walking"
	"github.com/containerd/containerd/v2/plugins/snapshots/native"
	"github.com/containerd/containerd/v2/plugins/snapshots/overlay"
	"github.com/containerd/containerd/v2/plugins/snapshots/overlay/overlayutils"
	"github.com/containerd/platforms"
	"github.com/lade-build/lade/buildkit"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/cmd/buildkitd/config"
	"github.com/moby/buildkit/executor/oci"
	dockerfileversion "github.com/moby/buildkit/frontend/dockerfile/version"
	"github.com/moby/buildkit/util/appdefaults"
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
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/semaphore"
)

// newWorker creates the OCI worker (runc) and wraps it so that its image,
// oci and docker exporters are lade's.
func newWorker(ctx context.Context, cfg *config.Config, differ string) (*buildkit.Worker, error) {
	oc := cfg.Workers.OCI
	sn, err := snapshotterFactory(cfg.Root, oc.Snapshotter)
	if err != nil {
		return nil, err
	}
	nc := networkConfig(oc.NetworkConfig)
	nopt := netproviders.Opt{Mode: nc.Mode, CNI: cniprovider.Opt{
		Root: cfg.Root, ConfigPath: nc.CNIConfigPath, BinaryDir: nc.CNIBinaryPath,
		PoolSize: nc.CNIPoolSize, BridgeName: nc.BridgeName, BridgeSubnet: nc.BridgeSubnet,
	}}
	var sem *semaphore.Weighted
	if oc.MaxParallelism > 0 {
		sem = semaphore.NewWeighted(int64(oc.MaxParallelism))
	}
	opt, err := runc.NewWorkerOpt(cfg.Root, sn, false, oci.ProcessSandbox, oc.Labels, nil, nopt, dnsConfig(cfg.DNS),
		oc.Binary, oc.ApparmorProfile, oc.SELinux, sem, "", oc.DefaultCgroupParent, nil)
	if err != nil {
		return nil, err
	}
	opt.GCPolicy = gcPolicy(oc.GCConfig, cfg.Root)
	opt.BuildkitVersion = client.BuildkitVersion{
		Package: version.Package, Version: version.Version, Revision: version.Revision,
		DockerfileVersion: dockerfileversion.Version(),
	}
	opt.RegistryHosts = resolver.NewRegistryConfig(cfg.Registries)
	if opt.Platforms, err = workerPlatforms(oc.Platforms); err != nil {
		return nil, err
	}
	if err := useDiffer(differ, &opt); err != nil {
		return nil, err
	}
	w, err := base.NewWorker(ctx, opt)
	if err != nil {
		return nil, err
	}
	bklog.L.Infof("OCI worker %s: snapshotter %s, platforms %v, %s differ, exporters image/oci/docker by lade", w.ID(), sn.Name, formatPlatforms(opt.Platforms), differ)
	return buildkit.NewWorker(w), nil
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

// snapshotterFactory returns the overlayfs or native snapshotter; auto picks
// overlayfs when the root's file system supports it.
func snapshotterFactory(root, name string) (runc.SnapshotterFactory, error) {
	if name == "auto" || name == "" {
		name = "native"
		if err := overlayutils.Supported(root); err == nil {
			name = "overlayfs"
		} else {
			bklog.L.Infof("overlayfs is not supported on %s (%v): using the native snapshotter", root, err)
		}
	}
	f := runc.SnapshotterFactory{Name: name}
	switch name {
	case "overlayfs":
		f.New = func(root string) (ctdsnapshot.Snapshotter, error) {
			return overlay.NewSnapshotter(root, overlay.AsynchronousRemove)
		}
	case "native":
		f.New = native.NewSnapshotter
	default:
		return f, fmt.Errorf("unknown snapshotter %q: use auto, overlayfs or native", name)
	}
	return f, nil
}

// networkConfig fills buildkitd's network defaults.
func networkConfig(nc config.NetworkConfig) config.NetworkConfig {
	if nc.Mode == "" {
		nc.Mode = "auto"
	}
	if nc.CNIConfigPath == "" {
		nc.CNIConfigPath = appdefaults.DefaultCNIConfigPath
	}
	if nc.CNIBinaryPath == "" {
		nc.CNIBinaryPath = appdefaults.DefaultCNIBinDir
	}
	if nc.BridgeName == "" {
		nc.BridgeName = appdefaults.BridgeName
	}
	if nc.BridgeSubnet == "" {
		nc.BridgeSubnet = appdefaults.BridgeSubnet
	}
	return nc
}

// dnsConfig converts the config's DNS section.
func dnsConfig(c *config.DNSConfig) *oci.DNSConfig {
	if c == nil {
		return nil
	}
	return &oci.DNSConfig{Nameservers: c.Nameservers, Options: c.Options, SearchDomains: c.SearchDomains}
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
