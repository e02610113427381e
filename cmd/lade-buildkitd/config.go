package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/moby/buildkit/cmd/buildkitd/config"
	"github.com/moby/buildkit/util/appdefaults"
	"github.com/moby/buildkit/util/archutil"
	"github.com/moby/buildkit/util/disk"
	"github.com/urfave/cli/v3"
)

// loadConfig reads the TOML config file (a missing file is an empty
// config; a key buildkitd does not know is an error), fills buildkitd's
// defaults and applies the command-line flags over it, as buildkitd does.
// warnings are what buildkitd warns about once logging is set up.
func loadConfig(c *cli.Command) (cfg config.Config, warnings []string, err error) {
	if cfg, err = loadConfigFile(c.String("config")); err != nil {
		return cfg, nil, err
	}
	if cfg.Debug { //nolint:staticcheck // buildkitd still honours the old key
		warnings = append(warnings, "'debug' configuration option is deprecated, use 'log.level = \"debug\"' instead")
	}
	if cfg.Trace { //nolint:staticcheck // buildkitd still honours the old key
		warnings = append(warnings, "'trace' configuration option is deprecated, use 'log.level = \"trace\"' instead")
	}
	// The deprecated top-level keys set the level unless [log] does.
	if cfg.Log.Level == "" && cfg.Trace { //nolint:staticcheck // as buildkitd
		cfg.Log.Level = "trace"
	} else if cfg.Log.Level == "" && cfg.Debug { //nolint:staticcheck // as buildkitd
		cfg.Log.Level = "debug"
	}
	setDefaults(&cfg)
	if err := applyMainFlags(c, &cfg, &warnings); err != nil {
		return cfg, warnings, err
	}
	if err := applyOCIFlags(c, &cfg); err != nil {
		return cfg, warnings, err
	}
	if err := applyContainerdFlags(c, &cfg); err != nil {
		return cfg, warnings, err
	}
	return cfg, warnings, nil
}

// setDefaults fills what buildkitd fills before applying the flags.
func setDefaults(cfg *config.Config) {
	if cfg.Root == "" {
		cfg.Root = defaultRoot()
	}
	if len(cfg.GRPC.Address) == 0 {
		cfg.GRPC.Address = []string{defaultAddress()}
	}
	host := formatPlatforms(archutil.SupportedPlatforms(false))
	if cfg.Workers.OCI.Platforms == nil {
		cfg.Workers.OCI.Platforms = host
	}
	if cfg.Workers.Containerd.Platforms == nil {
		cfg.Workers.Containerd.Platforms = host
	}
	cfg.Workers.OCI.NetworkConfig = networkConfig(cfg.Workers.OCI.NetworkConfig)
	cfg.Workers.Containerd.NetworkConfig = networkConfig(cfg.Workers.Containerd.NetworkConfig)
	if isRootlessConfig() {
		_ = appdefaults.EnsureUserAddressDir()
	}
	if cfg.OTEL.SocketPath == "" {
		cfg.OTEL.SocketPath = appdefaults.TraceSocketPath(isRootlessConfig())
	}
	if len(cfg.CDI.SpecDirs) == 0 {
		cfg.CDI.SpecDirs = appdefaults.CDISpecDirs
	}
}

// networkConfig fills buildkitd's network defaults.
func networkConfig(nc config.NetworkConfig) config.NetworkConfig {
	if nc.Mode == "" {
		nc.Mode = "auto"
	}
	if nc.CNIConfigPath == "" {
		nc.CNIConfigPath = defaultCNIConfigPath()
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

// applyMainFlags applies the daemon-wide flags over the config.
func applyMainFlags(c *cli.Command, cfg *config.Config, warnings *[]string) error {
	if c.Bool("debug") {
		cfg.Log.Level = "debug"
	}
	if c.IsSet("trace") {
		*warnings = append(*warnings, "--trace option is deprecated; use --log-level=trace instead")
		if c.Bool("trace") {
			cfg.Log.Level = "trace"
		}
	}
	if c.IsSet("root") {
		cfg.Root = c.String("root")
	}
	if c.IsSet("log-format") {
		cfg.Log.Format = c.String("log-format")
	}
	if c.IsSet("log-level") {
		cfg.Log.Level = c.String("log-level")
	}
	if c.IsSet("addr") {
		cfg.GRPC.Address = c.StringSlice("addr")
	}
	if len(cfg.GRPC.Address) == 0 {
		return fmt.Errorf("--addr cannot be empty")
	}
	if c.IsSet("allow-insecure-entitlement") {
		cfg.Entitlements = c.StringSlice("allow-insecure-entitlement")
	}
	for _, e := range cfg.Entitlements {
		switch e {
		case "security.insecure", "network.host", "device":
		default:
			return fmt.Errorf("invalid entitlement %q: use network.host, security.insecure or device", e)
		}
	}
	if c.IsSet("proxy-network") {
		cfg.ProxyNetwork = c.Bool("proxy-network")
	}
	if c.IsSet("debugaddr") {
		cfg.GRPC.DebugAddress = c.String("debugaddr")
	}
	if err := applyGRPCFlags(c, &cfg.GRPC); err != nil {
		return err
	}
	if c.IsSet("otel-socket-path") {
		cfg.OTEL.SocketPath = c.String("otel-socket-path")
	}
	if c.IsSet("cdi-disabled") {
		v := c.Bool("cdi-disabled")
		cfg.CDI.Disabled = &v
	}
	if c.IsSet("cdi-spec-dir") {
		cfg.CDI.SpecDirs = c.StringSlice("cdi-spec-dir")
	}
	return nil
}

// applyGRPCFlags sets the sockets' owner and the TLS files.
func applyGRPCFlags(c *cli.Command, g *config.GRPCConfig) error {
	if g.UID == nil {
		uid := os.Getuid()
		g.UID = &uid
	}
	if g.GID == nil {
		gid := os.Getgid()
		g.GID = &gid
	}
	if group := c.String("group"); group != "" {
		gid, err := groupID(group)
		if err != nil {
			return fmt.Errorf("--group %q: %w", group, err)
		}
		g.GID = &gid
	}
	if v := c.String("tlscert"); v != "" {
		g.TLS.Cert = v
	}
	if v := c.String("tlskey"); v != "" {
		g.TLS.Key = v
	}
	if v := c.String("tlscacert"); v != "" {
		g.TLS.CA = v
	}
	return nil
}

// prepareRoot makes the root absolute and creates it.
func prepareRoot(cfg *config.Config) error {
	root, err := filepath.Abs(cfg.Root)
	if err != nil {
		return err
	}
	cfg.Root = root
	if err := os.MkdirAll(root, 0o700); err != nil {
		return fmt.Errorf("create root %s: %w", root, err)
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

// labelMap parses KEY=VALUE labels of the flag named flag.
func labelMap(flag string, kvs []string) (map[string]string, error) {
	m := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("--%s %q: use KEY=VALUE", flag, kv)
		}
		m[k] = v
	}
	return m, nil
}

// defaultGCKeepStorage is the default of the --*-gc-keepstorage flags,
// from the size of the default root's disk, as buildkitd prints it.
func defaultGCKeepStorage() string {
	dstat, _ := disk.GetDiskStat(defaultRoot())
	return gcConfigToString(config.GCConfig{}, dstat)
}

// gcConfigToString formats a worker's GC limits as "Reserved[,Free[,Maximum]]" in MB.
func gcConfigToString(cfg config.GCConfig, dstat disk.DiskStat) string {
	if cfg.IsUnset() {
		cfg.GCReservedSpace = cfg.GCKeepStorage
	}
	if cfg.IsUnset() {
		cfg = config.DetectDefaultGCCap(dstat)
	}
	out := []string{strconv.FormatInt(cfg.GCReservedSpace.AsBytes(disk.DiskStat{})/1e6, 10)}
	free := cfg.GCMinFreeSpace.AsBytes(dstat) / 1e6
	maxUsed := cfg.GCMaxUsedSpace.AsBytes(dstat) / 1e6
	if free != 0 || maxUsed != 0 {
		out = append(out, strconv.FormatInt(free, 10))
		if maxUsed != 0 {
			out = append(out, strconv.FormatInt(maxUsed, 10))
		}
	}
	return strings.Join(out, ",")
}

// parseGCKeepStorage parses "Reserved[,Free[,Maximum]]" (MB) into the
// limits a --*-gc-keepstorage flag sets.
func parseGCKeepStorage(flag, in string) (config.GCConfig, error) {
	var cfg config.GCConfig
	if in == "" {
		return cfg, nil
	}
	parts := strings.SplitN(in, ",", 3)
	fields := []*config.DiskSpace{&cfg.GCReservedSpace, &cfg.GCMinFreeSpace, &cfg.GCMaxUsedSpace}
	for i, p := range parts {
		mb, err := strconv.ParseInt(strings.TrimSpace(p), 10, 64)
		if err != nil {
			return cfg, fmt.Errorf("--%s %q: use Reserved[,Free[,Maximum]] in MB: %w", flag, in, err)
		}
		*fields[i] = config.DiskSpace{Bytes: mb * 1e6}
	}
	return cfg, nil
}
