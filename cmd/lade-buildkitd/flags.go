package main

import (
	"os"
	"path/filepath"

	"github.com/containerd/containerd/v2/defaults"
	"github.com/moby/buildkit/util/appdefaults"
	"github.com/moby/sys/userns"
	"github.com/urfave/cli/v3"
)

// daemonFlags returns the command line: every flag of stock buildkitd
// (v0.34.2, Linux) with its name, meaning, default and environment
// variable, then lade's own. The rootless switches default to true in a
// user namespace, as buildkitd's do.
func daemonFlags() []cli.Flag {
	flags := append(mainFlags(), containerdFlags()...)
	flags = append(flags, ociFlags()...)
	return append(flags,
		&cli.StringFlag{Name: "differ", Usage: "layer differ: lade (parallel read-ahead, the same tars) or buildkit (BuildKit's overlay and walking differs)", Value: differLade, Sources: cli.EnvVars("LADE_DIFFER")},
	)
}

// mainFlags are buildkitd's daemon-wide flags.
func mainFlags() []cli.Flag {
	inUserNS := userns.RunningInUserNS()
	return []cli.Flag{
		&cli.BoolFlag{Name: "rootless", Usage: "set all the default options to be compatible with rootless containers", Value: inUserNS},
		&cli.StringFlag{Name: "config", Usage: "path to config file", Value: defaultConfigPath(), Sources: cli.EnvVars("BUILDKITD_CONFIG")},
		&cli.BoolFlag{Name: "debug", Usage: "enable debug output in logs"},
		&cli.BoolFlag{Name: "trace", Usage: "enable trace output in logs (highly verbose, could affect performance)", Hidden: true},
		&cli.StringFlag{Name: "root", Usage: "path to state directory", Value: defaultRoot()},
		&cli.StringSliceFlag{Name: "addr", Usage: "listening address (socket or tcp)", Value: []string{defaultAddress()}},
		&cli.StringFlag{Name: "log-format", Usage: "log formatter: json or text", Value: "text"},
		&cli.StringFlag{Name: "log-level", Usage: "set the log level", Value: "info", Sources: cli.EnvVars("BUILDKITD_LOG_LEVEL")},
		&cli.StringFlag{Name: "group", Usage: "group (name or gid) which will own all Unix socket listening addresses"},
		&cli.StringFlag{Name: "debugaddr", Usage: "debugging address (eg. 0.0.0.0:6060)", Sources: cli.EnvVars("BUILDKITD_DEBUGADDR")},
		&cli.StringFlag{Name: "tlscert", Usage: "certificate file to use"},
		&cli.StringFlag{Name: "tlskey", Usage: "key file to use"},
		&cli.StringFlag{Name: "tlscacert", Usage: "ca certificate to verify clients"},
		&cli.StringSliceFlag{Name: "allow-insecure-entitlement", Usage: "allows insecure entitlements e.g. network.host, security.insecure, device"},
		&cli.BoolFlag{Name: "proxy-network", Usage: "enable proxy network enforcement for all builds"},
		&cli.StringFlag{Name: "otel-socket-path", Usage: "OTEL collector trace socket path"},
		&cli.BoolFlag{Name: "cdi-disabled", Usage: "disables support of the Container Device Interface (CDI)"},
		&cli.StringSliceFlag{Name: "cdi-spec-dir", Usage: "list of directories to scan for CDI spec files"},
		&cli.BoolFlag{Name: "save-cache-debug", Usage: "enable saving cache debug info"},
	}
}

// containerdFlags are buildkitd's containerd worker flags.
func containerdFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "containerd-worker", Usage: "enable containerd workers (true/false/auto)", Value: "auto"},
		&cli.StringFlag{Name: "containerd-worker-addr", Usage: "containerd socket", Value: defaults.DefaultAddress},
		&cli.StringSliceFlag{Name: "containerd-worker-labels", Usage: "user-specific annotation labels (com.example.foo=bar)"},
		&cli.StringSliceFlag{Name: "containerd-worker-platform", Usage: "override supported platforms for worker", Hidden: true},
		&cli.StringFlag{Name: "containerd-worker-namespace", Usage: "override containerd namespace", Value: defaultContainerdNamespace, Hidden: true},
		&cli.StringFlag{Name: "containerd-worker-runtime", Usage: "override containerd runtime", Value: defaults.DefaultRuntime, Hidden: true},
		&cli.StringFlag{Name: "containerd-worker-net", Usage: "worker network type (auto, bridge, cni or host)", Value: "auto"},
		&cli.StringFlag{Name: "containerd-cni-config-path", Usage: "path of cni config file", Value: defaultCNIConfigPath()},
		&cli.StringFlag{Name: "containerd-cni-binary-dir", Usage: "path of cni binary files", Value: appdefaults.DefaultCNIBinDir},
		&cli.IntFlag{Name: "containerd-cni-pool-size", Usage: "size of cni network namespace pool"},
		&cli.StringFlag{Name: "containerd-worker-snapshotter", Usage: "snapshotter name to use", Value: defaults.DefaultSnapshotter},
		&cli.StringFlag{Name: "containerd-worker-apparmor-profile", Usage: "set the name of the apparmor profile applied to containers"},
		&cli.BoolFlag{Name: "containerd-worker-selinux", Usage: "apply SELinux labels"},
		&cli.BoolFlag{Name: "containerd-worker-hyperv-isolation", Usage: "use Hyper-V isolation for Windows containers"},
		&cli.IntFlag{Name: "containerd-max-parallelism", Usage: "limit the number of parallel build steps that can run at the same time"},
		&cli.BoolFlag{Name: "containerd-worker-rootless", Usage: "enable rootless mode", Value: userns.RunningInUserNS()},
		&cli.BoolFlag{Name: "containerd-worker-gc", Usage: "Enable automatic garbage collection on worker", Value: true},
		&cli.StringFlag{Name: "containerd-worker-gc-keepstorage", Usage: gcKeepStorageUsage, Value: defaultGCKeepStorage()},
	}
}

// ociFlags are buildkitd's OCI (runc) worker flags.
func ociFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "oci-worker", Usage: "enable oci workers (true/false/auto)", Value: "auto"},
		&cli.StringSliceFlag{Name: "oci-worker-labels", Usage: "user-specific annotation labels (com.example.foo=bar)"},
		&cli.StringFlag{Name: "oci-worker-snapshotter", Usage: "name of snapshotter (overlayfs, native, etc.)", Value: "auto"},
		&cli.StringFlag{Name: "oci-worker-proxy-snapshotter-path", Usage: "address of proxy snapshotter socket (do not include 'unix://' prefix)"},
		&cli.StringSliceFlag{Name: "oci-worker-platform", Usage: "override supported platforms for worker"},
		&cli.StringFlag{Name: "oci-worker-net", Usage: "worker network type (auto, bridge, cni or host)", Value: "auto"},
		&cli.StringFlag{Name: "oci-cni-config-path", Usage: "path of cni config file", Value: defaultCNIConfigPath()},
		&cli.StringFlag{Name: "oci-cni-binary-dir", Usage: "path of cni binary files", Value: appdefaults.DefaultCNIBinDir},
		&cli.IntFlag{Name: "oci-cni-pool-size", Usage: "size of cni network namespace pool"},
		&cli.StringFlag{Name: "oci-worker-binary", Usage: "name of specified oci worker binary"},
		&cli.StringFlag{Name: "oci-worker-apparmor-profile", Usage: "set the name of the apparmor profile applied to containers"},
		&cli.BoolFlag{Name: "oci-worker-selinux", Usage: "apply SELinux labels"},
		&cli.IntFlag{Name: "oci-max-parallelism", Usage: "limit the number of parallel build steps that can run at the same time"},
		&cli.BoolFlag{Name: "oci-worker-rootless", Usage: "enable rootless mode", Value: userns.RunningInUserNS()},
		&cli.BoolFlag{Name: "oci-worker-no-process-sandbox", Usage: "use the host PID namespace and procfs (WARNING: allows build containers to kill (and potentially ptrace) an arbitrary process in the host namespace)"},
		&cli.BoolFlag{Name: "oci-worker-gc", Usage: "Enable automatic garbage collection on worker", Value: true},
		&cli.StringFlag{Name: "oci-worker-gc-keepstorage", Usage: gcKeepStorageUsage, Value: defaultGCKeepStorage()},
	}
}

// gcKeepStorageUsage is the usage of the --*-gc-keepstorage flags.
const gcKeepStorageUsage = `Amount of storage GC keep locally, format "Reserved[,Free[,Maximum]]" (MB)`

// defaultContainerdNamespace is the containerd namespace the containerd
// worker uses unless told otherwise, as buildkitd's.
const defaultContainerdNamespace = "buildkit"

// isRootlessConfig reports whether the defaults are the rootless ones: in
// a user namespace as a user other than root, as buildkitd decides.
func isRootlessConfig() bool {
	if !userns.RunningInUserNS() {
		return false
	}
	u := os.Getenv("USER")
	return u != "" && u != "root"
}

// defaultConfigPath is buildkitd.toml in the system or, rootless, the
// user's config directory.
func defaultConfigPath() string {
	if isRootlessConfig() {
		return filepath.Join(appdefaults.UserConfigDir(), "buildkitd.toml")
	}
	return filepath.Join(appdefaults.ConfigDir, "buildkitd.toml")
}

// defaultRoot is the state directory used when neither --root nor the
// config sets one.
func defaultRoot() string {
	if isRootlessConfig() {
		return appdefaults.UserRoot()
	}
	return appdefaults.Root
}

// defaultAddress is the socket listened on when neither --addr nor the
// config sets one.
func defaultAddress() string {
	if isRootlessConfig() {
		return appdefaults.UserAddress()
	}
	return appdefaults.Address
}

// defaultCNIConfigPath is the CNI config of the workers' cni network mode.
func defaultCNIConfigPath() string {
	if isRootlessConfig() {
		return appdefaults.UserCNIConfigPath
	}
	return appdefaults.DefaultCNIConfigPath
}
