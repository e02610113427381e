package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/moby/buildkit/cmd/buildkitd/config"
	"github.com/urfave/cli/v3"
)

// loadConfig reads the TOML config file (a missing file is an empty
// config) and applies the command-line flags over it, as buildkitd does.
func loadConfig(c *cli.Command) (config.Config, error) {
	cfg, err := config.LoadFile(c.String("config"))
	if err != nil {
		return cfg, err
	}
	if cfg.Root == "" || c.IsSet("root") {
		cfg.Root = c.String("root")
	}
	if len(cfg.GRPC.Address) == 0 || c.IsSet("addr") {
		cfg.GRPC.Address = c.StringSlice("addr")
	}
	if len(cfg.GRPC.Address) == 0 {
		return cfg, fmt.Errorf("--addr cannot be empty")
	}
	if c.IsSet("debugaddr") {
		cfg.GRPC.DebugAddress = c.String("debugaddr")
	}
	if cfg.Log.Level == "" || c.IsSet("log-level") {
		cfg.Log.Level = c.String("log-level")
	}
	if c.Bool("debug") || cfg.Debug { //nolint:staticcheck // buildkitd still honours the old key
		cfg.Log.Level = "debug"
	}
	if g := c.String("group"); g != "" {
		gid, err := groupID(g)
		if err != nil {
			return cfg, fmt.Errorf("--group %q: %w", g, err)
		}
		cfg.GRPC.GID = &gid
	}
	if c.IsSet("allow-insecure-entitlement") {
		cfg.Entitlements = c.StringSlice("allow-insecure-entitlement")
	}
	for _, e := range cfg.Entitlements {
		switch e {
		case "security.insecure", "network.host", "device":
		default:
			return cfg, fmt.Errorf("invalid entitlement %q: use network.host, security.insecure or device", e)
		}
	}
	if err := applyWorkerFlags(c, &cfg.Workers.OCI); err != nil {
		return cfg, err
	}
	root, err := filepath.Abs(cfg.Root)
	if err != nil {
		return cfg, err
	}
	cfg.Root = root
	if err := os.MkdirAll(root, 0o700); err != nil {
		return cfg, fmt.Errorf("create root %s: %w", root, err)
	}
	return cfg, nil
}

// applyWorkerFlags sets the OCI worker's settings from the flags.
func applyWorkerFlags(c *cli.Command, oc *config.OCIConfig) error {
	if c.IsSet("oci-worker") {
		on, err := parseBoolOrAuto(c.String("oci-worker"))
		if err != nil {
			return fmt.Errorf("--oci-worker %q: use true, false or auto", c.String("oci-worker"))
		}
		oc.Enabled = on
	}
	if oc.Enabled != nil && !*oc.Enabled {
		return fmt.Errorf("the OCI worker is disabled (--oci-worker=false or [worker.oci] enabled = false): lade-buildkitd has no other worker yet")
	}
	if c.IsSet("containerd-worker") {
		on, err := parseBoolOrAuto(c.String("containerd-worker"))
		if err != nil {
			return fmt.Errorf("--containerd-worker %q: use true, false or auto", c.String("containerd-worker"))
		}
		if on != nil && *on {
			return fmt.Errorf("--containerd-worker=true: lade-buildkitd has no containerd worker yet")
		}
	}
	if oc.Snapshotter == "" || c.IsSet("oci-worker-snapshotter") {
		oc.Snapshotter = c.String("oci-worker-snapshotter")
	}
	if oc.Binary == "" || c.IsSet("oci-worker-binary") {
		oc.Binary = c.String("oci-worker-binary")
	}
	if p := c.StringSlice("oci-worker-platform"); len(p) > 0 {
		oc.Platforms = p
	}
	if oc.Mode == "" || c.IsSet("oci-worker-net") {
		oc.Mode = c.String("oci-worker-net")
	}
	if c.IsSet("oci-worker-gc") {
		v := c.Bool("oci-worker-gc")
		oc.GC = &v
	}
	if c.IsSet("oci-max-parallelism") {
		oc.MaxParallelism = int(c.Int("oci-max-parallelism"))
	}
	if oc.Labels == nil {
		oc.Labels = map[string]string{}
	}
	for _, kv := range c.StringSlice("oci-worker-labels") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("--oci-worker-labels %q: use KEY=VALUE", kv)
		}
		oc.Labels[k] = v
	}
	if oc.Rootless {
		return fmt.Errorf("rootless mode is not supported by lade-buildkitd")
	}
	return nil
}

// parseBoolOrAuto parses a worker switch as buildkitd does: "" and "auto"
// are nil (decided at start), anything else a boolean.
func parseBoolOrAuto(s string) (*bool, error) {
	if s == "" || strings.EqualFold(s, "auto") {
		return nil, nil
	}
	b, err := strconv.ParseBool(s)
	return &b, err
}
