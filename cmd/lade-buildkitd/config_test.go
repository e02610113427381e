package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/moby/buildkit/cmd/buildkitd/config"
	"github.com/moby/sys/userns"
	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v3"
)

// buildkitModuleDir is where BuildKit's module sources are, from the
// build's dependency list and GOMODCACHE.
func buildkitModuleDir(t *testing.T) string {
	t.Helper()
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		t.Fatal("no build info")
	}
	for _, d := range bi.Deps {
		if d.Path == "github.com/moby/buildkit" {
			cache := os.Getenv("GOMODCACHE")
			if cache == "" {
				cache = filepath.Join(os.Getenv("HOME"), "go", "pkg", "mod")
				if gp := os.Getenv("GOPATH"); gp != "" {
					cache = filepath.Join(filepath.SplitList(gp)[0], "pkg", "mod")
				}
			}
			return filepath.Join(cache, "github.com/moby/buildkit@"+d.Version)
		}
	}
	t.Fatal("github.com/moby/buildkit is not a dependency")
	return ""
}

// TestStockExampleConfig: the example buildkitd.toml of BuildKit's own
// docs (docs/buildkitd.toml.md), every section and key, loads without an
// unknown key.
func TestStockExampleConfig(t *testing.T) {
	md, err := os.ReadFile(filepath.Join(buildkitModuleDir(t), "docs", "buildkitd.toml.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```toml\n(.*?)```").FindSubmatch(md)
	if m == nil {
		t.Fatal("no toml block in buildkitd.toml.md")
	}
	path := filepath.Join(t.TempDir(), "buildkitd.toml")
	if err := os.WriteFile(path, m[1], 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfigFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.GRPC.Address) == 0 || cfg.Workers.OCI.Enabled == nil || len(cfg.Registries) == 0 || cfg.GRPC.TLS.Cert == "" {
		t.Fatalf("example not decoded: %+v", cfg.GRPC)
	}
}

// TestUnknownConfigKeys: a key buildkitd's config has no place for is an
// error naming the file, line and key, with the key meant for a near
// miss, also under a quoted table name; a missing file is an empty config.
func TestUnknownConfigKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "buildkitd.toml")
	toml := "root = \"/x\"\n[worker.oci]\n  gckeepstorge = 100\n[registry.\"docker.io\"]\n  mirrorz = [\"m\"]\n[grpc.tls]\n  kye = \"c\"\n[history]\n  maxEntries = 5\n  completelyDifferent = 1\n"
	if err := os.WriteFile(path, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := loadConfigFile(path)
	if err == nil {
		t.Fatal("unknown keys accepted")
	}
	for _, want := range []string{
		path + ":3: unknown key worker.oci.gckeepstorge: did you mean worker.oci.gckeepstorage?",
		`:5: unknown key registry."docker.io".mirrorz: did you mean registry."docker.io".mirrors?`,
		":7: unknown key grpc.tls.kye: did you mean grpc.tls.key?",
		":10: unknown key history.completelyDifferent (",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if cfg, err := loadConfigFile(filepath.Join(t.TempDir(), "none.toml")); err != nil || cfg.Root != "" {
		t.Fatalf("missing file: %v %+v", err, cfg)
	}
	if err := os.WriteFile(path, []byte("[grpc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadConfigFile(path); err == nil || !strings.Contains(err.Error(), path+":") {
		t.Fatalf("syntax error: %v", err)
	}
}

// parseFlags runs the command line args through lade-buildkitd's flags and
// loadConfig with the config file toml, and returns the config.
func parseFlags(t *testing.T, toml string, args ...string) (config.Config, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "buildkitd.toml")
	if err := os.WriteFile(path, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	var cfg config.Config
	var lerr error
	app := newApp()
	app.Action = func(_ context.Context, c *cli.Command) error {
		cfg, _, lerr = loadConfig(c)
		return nil
	}
	if err := app.Run(context.Background(), append([]string{"lade-buildkitd", "--config", path}, args...)); err != nil {
		t.Fatal(err)
	}
	return cfg, lerr
}

// TestFlagsOverConfig: flags apply over the file as buildkitd applies
// them: worker switches, labels merged, gc keepstorage in MB, network and
// CNI settings, TLS files, CDI, containerd defaults.
func TestFlagsOverConfig(t *testing.T) {
	toml := "[worker.oci]\n  labels = {a = \"1\"}\n  networkMode = \"host\"\n[worker.containerd]\n  namespace = \"ns\"\n"
	cfg, err := parseFlags(t, toml,
		"--oci-worker=true", "--containerd-worker=false", "--oci-worker-gc=false",
		"--oci-worker-labels=b=2", "--oci-worker-gc-keepstorage=100,200,300",
		"--oci-cni-config-path=/c.json", "--oci-cni-pool-size=3", "--oci-worker-net=cni",
		"--tlscert=/cert", "--tlskey=/key", "--tlscacert=/ca", "--cdi-disabled",
		"--containerd-worker-addr=/run/x.sock", "--containerd-worker-snapshotter=native",
		"--log-format=json", "--proxy-network", "--otel-socket-path=/o.sock")
	if err != nil {
		t.Fatal(err)
	}
	oc, cc := cfg.Workers.OCI, cfg.Workers.Containerd
	switch {
	case oc.Enabled == nil || !*oc.Enabled, cc.Enabled == nil || *cc.Enabled, oc.GC == nil || *oc.GC:
		t.Fatalf("switches: oci %v containerd %v gc %v", oc.Enabled, cc.Enabled, oc.GC)
	case oc.Labels["a"] != "1" || oc.Labels["b"] != "2":
		t.Fatalf("labels %v", oc.Labels)
	case oc.GCReservedSpace.Bytes != 100e6 || oc.GCMinFreeSpace.Bytes != 200e6 || oc.GCMaxUsedSpace.Bytes != 300e6:
		t.Fatalf("keepstorage %+v", oc.GCConfig)
	case oc.CNIConfigPath != "/c.json" || oc.CNIPoolSize != 3 || oc.Mode != "cni":
		t.Fatalf("network %+v", oc.NetworkConfig)
	case cfg.GRPC.TLS != config.TLSConfig{Cert: "/cert", Key: "/key", CA: "/ca"}:
		t.Fatalf("tls %+v", cfg.GRPC.TLS)
	case cfg.CDI.Disabled == nil || !*cfg.CDI.Disabled || cfg.Log.Format != "json" || !cfg.ProxyNetwork || cfg.OTEL.SocketPath != "/o.sock":
		t.Fatalf("main flags: %+v %+v %v %v", cfg.CDI, cfg.Log, cfg.ProxyNetwork, cfg.OTEL)
	case cc.Address != "/run/x.sock" || cc.Snapshotter != "native" || cc.Namespace != "ns" || cc.Runtime.Name == "":
		t.Fatalf("containerd %+v", cc)
	}
	for _, bad := range [][]string{
		{"--oci-worker=maybe"}, {"--oci-worker-labels=nolabel"}, {"--oci-worker-gc-keepstorage=lots"},
		{"--allow-insecure-entitlement=root"},
	} {
		if _, err := parseFlags(t, "", bad...); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	// The deprecated debug key sets the level unless [log] or a flag does.
	if cfg, err := parseFlags(t, "debug = true\n"); err != nil || cfg.Log.Level != "debug" {
		t.Errorf("debug = true: level %q, %v", cfg.Log.Level, err)
	}
	if cfg, err := parseFlags(t, "debug = true\n", "--log-level=warn"); err != nil || cfg.Log.Level != "warn" {
		t.Errorf("debug = true, --log-level=warn: level %q, %v", cfg.Log.Level, err)
	}
	// Outside a user namespace, a rootless worker gets buildkitd's answer;
	// inside one (as root there) it is rootless.
	cfg, err = parseFlags(t, "", "--oci-worker-rootless")
	if inNS := userns.RunningInUserNS(); inNS && (err != nil || !cfg.Workers.OCI.Rootless) || !inNS && err != errRootlessNeedsUserNS {
		t.Errorf("--oci-worker-rootless (in a user namespace: %v): %v", inNS, err)
	}
}

// TestLoggingAndSystem: [log] format json and text are buildkitd's, any
// other is refused; [system] maxRegistryConcurrency must be positive.
func TestLoggingAndSystem(t *testing.T) {
	defer logrus.SetFormatter(logrus.StandardLogger().Formatter)
	if err := setupLogging(config.LogConfig{Format: "json", Level: "warn"}); err != nil {
		t.Fatal(err)
	}
	if _, ok := logrus.StandardLogger().Formatter.(*logrus.JSONFormatter); !ok || logrus.GetLevel() != logrus.WarnLevel {
		t.Fatalf("formatter %T level %v", logrus.StandardLogger().Formatter, logrus.GetLevel())
	}
	if err := setupLogging(config.LogConfig{Format: "xml"}); err == nil || !strings.Contains(err.Error(), `unsupported log type "xml"`) {
		t.Fatalf("xml: %v", err)
	}
	if err := setupLogging(config.LogConfig{Level: "loud"}); err == nil {
		t.Fatal("unknown level accepted")
	}
	_ = setupLogging(config.LogConfig{})
	zero := 0
	if err := applySystemConfig(&config.SystemConfig{MaxRegistryConcurrency: &zero}); err == nil {
		t.Fatal("maxRegistryConcurrency = 0 accepted")
	}
}
