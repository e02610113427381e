package main

import (
	"errors"
	"fmt"
	"maps"
	"os"

	"github.com/containerd/containerd/v2/defaults"
	"github.com/moby/buildkit/cmd/buildkitd/config"
	"github.com/moby/sys/userns"
	"github.com/urfave/cli/v3"
)

// errRootlessNeedsUserNS is buildkitd's answer to a rootless worker
// asked for outside a user namespace.
var errRootlessNeedsUserNS = errors.New("rootless mode requires to be executed as the mapped root in a user namespace; you may use RootlessKit for setting up the namespace")

// applyOCIFlags applies the --oci-* flags over [worker.oci].
func applyOCIFlags(c *cli.Command, cfg *config.Config) error {
	oc := &cfg.Workers.OCI
	if oc.Snapshotter == "" || c.IsSet("oci-worker-snapshotter") {
		oc.Snapshotter = c.String("oci-worker-snapshotter")
	}
	if err := applySwitch(c, "oci-worker", &oc.Enabled); err != nil {
		return err
	}
	if err := addLabels(c, "oci-worker-labels", &oc.Labels); err != nil {
		return err
	}
	if err := applyRootless(c, "oci-worker-rootless", &oc.Rootless); err != nil {
		return err
	}
	setBool(c, "oci-worker-no-process-sandbox", &oc.NoProcessSandbox)
	if p := c.StringSlice("oci-worker-platform"); len(p) > 0 {
		oc.Platforms = p
	}
	if err := applyGCFlags(c, "oci-worker", &oc.GCConfig); err != nil {
		return err
	}
	applyNetworkFlags(c, "oci-worker-net", "oci-cni", &oc.NetworkConfig)
	setString(c, "oci-worker-binary", &oc.Binary)
	setString(c, "oci-worker-proxy-snapshotter-path", &oc.ProxySnapshotterPath)
	setString(c, "oci-worker-apparmor-profile", &oc.ApparmorProfile)
	setBool(c, "oci-worker-selinux", &oc.SELinux)
	if c.IsSet("oci-max-parallelism") {
		oc.MaxParallelism = int(c.Int("oci-max-parallelism"))
	}
	return nil
}

// applyContainerdFlags applies the --containerd-* flags over
// [worker.containerd], with buildkitd's defaults (containerd's socket,
// namespace "buildkit", containerd's default runtime).
func applyContainerdFlags(c *cli.Command, cfg *config.Config) error {
	cc := &cfg.Workers.Containerd
	if cc.Address == "" {
		cc.Address = defaults.DefaultAddress
	}
	if err := applySwitch(c, "containerd-worker", &cc.Enabled); err != nil {
		return err
	}
	if err := applyRootless(c, "containerd-worker-rootless", &cc.Rootless); err != nil {
		return err
	}
	if err := addLabels(c, "containerd-worker-labels", &cc.Labels); err != nil {
		return err
	}
	setString(c, "containerd-worker-addr", &cc.Address)
	if p := c.StringSlice("containerd-worker-platform"); len(p) > 0 {
		cc.Platforms = p
	}
	if c.IsSet("containerd-worker-namespace") || cc.Namespace == "" {
		cc.Namespace = c.String("containerd-worker-namespace")
	}
	if c.IsSet("containerd-worker-runtime") || cc.Runtime.Name == "" {
		cc.Runtime = config.ContainerdRuntime{Name: c.String("containerd-worker-runtime")}
	}
	if err := applyGCFlags(c, "containerd-worker", &cc.GCConfig); err != nil {
		return err
	}
	applyNetworkFlags(c, "containerd-worker-net", "containerd-cni", &cc.NetworkConfig)
	setString(c, "containerd-worker-snapshotter", &cc.Snapshotter)
	setString(c, "containerd-worker-apparmor-profile", &cc.ApparmorProfile)
	setBool(c, "containerd-worker-selinux", &cc.SELinux)
	setBool(c, "containerd-worker-hyperv-isolation", &cc.HyperVIsolation)
	if c.IsSet("containerd-max-parallelism") {
		cc.MaxParallelism = int(c.Int("containerd-max-parallelism"))
	}
	return nil
}

// applyRootless applies --rootless and then the worker's own rootless
// flag, which, as in buildkitd, needs the mapped root of a user namespace.
func applyRootless(c *cli.Command, workerFlag string, rootless *bool) error {
	if c.IsSet("rootless") || c.Bool("rootless") {
		*rootless = c.Bool("rootless")
	}
	if c.IsSet(workerFlag) {
		if !userns.RunningInUserNS() || os.Geteuid() > 0 {
			return errRootlessNeedsUserNS
		}
		*rootless = c.Bool(workerFlag)
	}
	return nil
}

// applySwitch applies a true/false/auto worker switch.
func applySwitch(c *cli.Command, flag string, enabled **bool) error {
	if !c.IsSet(flag) {
		return nil
	}
	on, err := parseBoolOrAuto(c.String(flag))
	if err != nil {
		return fmt.Errorf("--%s %q: use true, false or auto", flag, c.String(flag))
	}
	*enabled = on
	return nil
}

// addLabels adds a labels flag's KEY=VALUE pairs to the config's labels.
func addLabels(c *cli.Command, flag string, labels *map[string]string) error {
	m, err := labelMap(flag, c.StringSlice(flag))
	if err != nil {
		return err
	}
	if *labels == nil {
		*labels = map[string]string{}
	}
	maps.Copy(*labels, m)
	return nil
}

// applyGCFlags applies --<prefix>-gc and --<prefix>-gc-keepstorage.
func applyGCFlags(c *cli.Command, prefix string, gc *config.GCConfig) error {
	if c.IsSet(prefix + "-gc") {
		v := c.Bool(prefix + "-gc")
		gc.GC = &v
	}
	if c.IsSet(prefix + "-gc-keepstorage") {
		limits, err := parseGCKeepStorage(prefix+"-gc-keepstorage", c.String(prefix+"-gc-keepstorage"))
		if err != nil {
			return err
		}
		gc.GCReservedSpace, gc.GCMinFreeSpace, gc.GCMaxUsedSpace = limits.GCReservedSpace, limits.GCMinFreeSpace, limits.GCMaxUsedSpace
	}
	return nil
}

// applyNetworkFlags applies a worker's network mode and CNI flags.
func applyNetworkFlags(c *cli.Command, modeFlag, cniPrefix string, nc *config.NetworkConfig) {
	setString(c, modeFlag, &nc.Mode)
	setString(c, cniPrefix+"-config-path", &nc.CNIConfigPath)
	setString(c, cniPrefix+"-binary-dir", &nc.CNIBinaryPath)
	if c.IsSet(cniPrefix + "-pool-size") {
		nc.CNIPoolSize = int(c.Int(cniPrefix + "-pool-size"))
	}
}

// setString sets *dst to a string flag given on the command line.
func setString(c *cli.Command, flag string, dst *string) {
	if c.IsSet(flag) {
		*dst = c.String(flag)
	}
}

// setBool sets *dst to a bool flag given on the command line.
func setBool(c *cli.Command, flag string, dst *bool) {
	if c.IsSet(flag) {
		*dst = c.Bool(flag)
	}
}
