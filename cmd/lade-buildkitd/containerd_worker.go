package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	ctd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/defaults"
	"github.com/containerd/containerd/v2/plugins"
	"github.com/lade-build/lade/buildkit"
	"github.com/moby/buildkit/cmd/buildkitd/config"
	"github.com/moby/buildkit/util/bklog"
	"github.com/moby/buildkit/util/network/cniprovider"
	"github.com/moby/buildkit/util/network/netproviders"
	"github.com/moby/buildkit/util/resolver"
	"github.com/moby/buildkit/worker/containerd"
	"github.com/pelletier/go-toml/v2"
)

// containerdConnectTimeout bounds the first connection to containerd.
const containerdConnectTimeout = 60 * time.Second

// newContainerdWorker connects to the containerd of cfg.Workers.Containerd
// and creates BuildKit's containerd worker over it: builds run as
// containerd tasks on containerd's snapshotter, and the worker's content,
// leases and image store are containerd's (in the configured namespace),
// so type=image names images where ctr, nerdctl and the kubelet see them.
// The worker is wrapped so that its image, oci and docker exporters are
// lade's; differ chooses the layer differ, and common gives the trace
// socket, CDI devices and compaction, as for the OCI worker.
func newContainerdWorker(ctx context.Context, cfg *config.Config, differ string, common workerCommon) (*buildkit.Worker, error) {
	cc := containerdDefaults(cfg.Workers.Containerd)
	if path, ok := containerdSocket(cc.Address); ok {
		// Fail now rather than after the connect timeout.
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("containerd worker: containerd's socket: %w: start containerd, or set --containerd-worker-addr ([worker.containerd] address)", err)
		}
	}
	wo, err := containerdWorkerOptions(cfg.Root, cc, cfg.DNS)
	if err != nil {
		return nil, err
	}
	wo.TraceSocket, wo.CDIManager, wo.Compaction = common.traceSocket, common.cdi, common.compaction
	opt, err := containerd.NewWorkerOpt(wo, ctd.WithTimeout(containerdConnectTimeout))
	if err != nil {
		return nil, fmt.Errorf("containerd worker on %s (namespace %s): %w", cc.Address, cc.Namespace, err)
	}
	if len(cc.Platforms) > 0 {
		// Otherwise the platforms are the ones containerd's runtimes report.
		if opt.Platforms, err = workerPlatforms(cc.Platforms); err != nil {
			return nil, err
		}
	}
	w, err := startWorker(ctx, opt, cc.GCConfig, cfg.Root, resolver.NewRegistryConfig(cfg.Registries), differ)
	if err != nil {
		return nil, err
	}
	bklog.L.Infof("containerd worker %s: %s, namespace %s, snapshotter %s, platforms %v, %s differ, exporters image/oci/docker by lade",
		w.ID(), cc.Address, cc.Namespace, cc.Snapshotter, formatPlatforms(opt.Platforms), differ)
	return buildkit.NewWorker(w), nil
}

// containerdDefaults fills stock buildkitd's defaults for what the config
// and flags left empty: containerd's default socket, the "buildkit"
// namespace, containerd's default snapshotter and the network defaults;
// a rootless worker's automatic network is the host's.
func containerdDefaults(cc config.ContainerdConfig) config.ContainerdConfig {
	if cc.Address == "" {
		cc.Address = defaults.DefaultAddress
	}
	if cc.Namespace == "" {
		cc.Namespace = defaultContainerdNamespace
	}
	if cc.Snapshotter == "" {
		cc.Snapshotter = defaults.DefaultSnapshotter
	}
	if cc.Rootless && (cc.Mode == "" || cc.Mode == "auto") {
		cc.Mode = "host"
	}
	cc.NetworkConfig = networkConfig(cc.NetworkConfig)
	return cc
}

// containerdWorkerOptions converts the worker's config section (defaults
// filled) into BuildKit's containerd worker options.
func containerdWorkerOptions(root string, cc config.ContainerdConfig, dns *config.DNSConfig) (containerd.WorkerOptions, error) {
	rt, err := containerdRuntime(cc.Runtime)
	if err != nil {
		return containerd.WorkerOptions{}, err
	}
	nc := cc.NetworkConfig
	return containerd.WorkerOptions{
		Root:            root,
		Address:         cc.Address,
		SnapshotterName: cc.Snapshotter,
		Namespace:       cc.Namespace,
		CgroupParent:    cc.DefaultCgroupParent,
		Rootless:        cc.Rootless,
		Labels:          cc.Labels,
		DNS:             dnsConfig(dns),
		NetworkOpt: netproviders.Opt{Mode: nc.Mode, CNI: cniprovider.Opt{
			Root: root, ConfigPath: nc.CNIConfigPath, BinaryDir: nc.CNIBinaryPath,
			PoolSize: nc.CNIPoolSize, BridgeName: nc.BridgeName, BridgeSubnet: nc.BridgeSubnet,
		}},
		ApparmorProfile: cc.ApparmorProfile,
		Selinux:         cc.SELinux,
		ParallelismSem:  parallelism(cc.MaxParallelism),
		Runtime:         rt,
		HyperVIsolation: cc.HyperVIsolation,
	}, nil
}

// containerdRuntime converts [worker.containerd.runtime]: its options
// table is decoded into the runtime's typed options (runc's for
// io.containerd.runc.v2, the generic ones otherwise), as stock does. An
// unnamed runtime is containerd's default, with its default options.
func containerdRuntime(rt config.ContainerdRuntime) (*containerd.RuntimeInfo, error) {
	if rt.Name == "" {
		return nil, nil
	}
	var opts any = &runtimeoptions.Options{}
	if rt.Name == plugins.RuntimeRuncV2 {
		opts = &runcoptions.Options{}
	}
	if len(rt.Options) > 0 {
		b, err := toml.Marshal(rt.Options)
		if err == nil {
			err = toml.Unmarshal(b, opts)
		}
		if err != nil {
			return nil, fmt.Errorf("[worker.containerd.runtime] options of %s: %w", rt.Name, err)
		}
	}
	return &containerd.RuntimeInfo{Name: rt.Name, Path: rt.Path, Options: opts}, nil
}

// containerdWorkerEnabled reports whether the containerd worker runs:
// enabled=true and false decide; unset (auto) runs it when containerd's
// socket exists (a tcp address always counts), as stock buildkitd does.
func containerdWorkerEnabled(cc config.ContainerdConfig) bool {
	if cc.Enabled != nil {
		return *cc.Enabled
	}
	path, ok := containerdSocket(containerdDefaults(cc).Address)
	if !ok {
		return true
	}
	_, err := os.Stat(path)
	return !errors.Is(err, os.ErrNotExist)
}

// containerdSocket returns the path of a unix socket address (with or
// without unix://); ok is false for tcp addresses.
func containerdSocket(addr string) (path string, ok bool) {
	if strings.HasPrefix(addr, "tcp://") {
		return "", false
	}
	return strings.TrimPrefix(addr, "unix://"), true
}
