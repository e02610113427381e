// Package main is the lade-buildkitd command, a buildkitd-compatible build
// daemon whose image, oci and docker exporters are lade's. It runs the OCI
// worker (runc) and/or the containerd worker, selected as buildkitd selects
// them, the built-in Dockerfile frontend and the gateway frontend, and serves BuildKit's API, so the
// stock buildctl, buildx's remote driver and any BuildKit client use it
// unchanged: `buildctl --addr unix:///run/buildkit/buildkitd.sock build ...`.
//
// Flags, environment variables and the TOML config file (--config, default
// /etc/buildkit/buildkitd.toml) are buildkitd's.
package main

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"syscall"

	"github.com/lade-build/lade/internal/writeback"
	"github.com/moby/buildkit/cmd/buildkitd/config"
	"github.com/moby/buildkit/util/apicaps"
	"github.com/moby/buildkit/util/appcontext"
	"github.com/moby/buildkit/util/bklog"
	"github.com/moby/buildkit/util/profiler"
	"github.com/moby/buildkit/util/stack"
	"github.com/moby/buildkit/util/tracing/detect"
	"github.com/moby/buildkit/version"
	"github.com/sirupsen/logrus"
	fscopy "github.com/tonistiigi/fsutil/copy"
	"github.com/urfave/cli/v3"
)

func init() {
	apicaps.ExportedProduct = "buildkit"
	bi, _ := debug.ReadBuildInfo()
	setVersion(bi)
	stack.SetVersionInfo(version.Version, version.Revision)
	detect.Recorder = detect.NewTraceRecorder()
	// As buildkitd: files are created with the modes asked for (snapshots,
	// cache mounts, the trace socket), and BuildKit's copy knows it need
	// not chmod after mkdir.
	syscall.Umask(0)
	fscopy.UmaskIsZero = true
}

func main() {
	// As buildkitd: the root context ends on SIGINT or SIGTERM (a third
	// one exits at once) and carries what BuildKit's appcontext
	// initializers add, TRACEPARENT's trace among them (tracing_env.go).
	if err := newApp().Run(appcontext.Context(), os.Args); err != nil {
		fmt.Fprintf(os.Stderr, "lade-buildkitd: %v\n", err)
		os.Exit(1)
	}
}

// newApp returns the command line of the daemon.
func newApp() *cli.Command {
	app := &cli.Command{
		Name:                      "lade-buildkitd",
		Usage:                     "BuildKit daemon with lade's image exporters",
		Version:                   versionString(),
		DisableSliceFlagSeparator: true,
		Flags:                     append(daemonFlags(), compatFlags()...),
		Action:                    run,
	}
	// buildkitd's hidden --profile-* flags (Go profiles written to files).
	profiler.Attach(app)
	return app
}

// run starts the daemon and serves until ctx ends.
func run(ctx context.Context, c *cli.Command) error {
	if os.Geteuid() > 0 {
		return errRootlessNeedsUserNS
	}
	if err := writeback.CheckEnv(); err != nil {
		return err
	}
	cfg, warnings, err := loadConfig(c)
	if err != nil {
		return err
	}
	if err := setupLogging(cfg.Log); err != nil {
		return err
	}
	for _, w := range warnings {
		bklog.L.Warn(w)
	}
	if err := applySystemConfig(cfg.System); err != nil {
		return err
	}
	if err := prepareRoot(&cfg); err != nil {
		return err
	}
	if cfg.GRPC.DebugAddress != "" {
		stop, err := serveDebug(ctx, cfg.GRPC.DebugAddress)
		if err != nil {
			return err
		}
		defer stop()
	}
	d, err := newDaemon(ctx, cfg, c.String("differ"), c.Bool("save-cache-debug"))
	if err != nil {
		return err
	}
	defer d.close()
	return d.serve(ctx)
}

// setupLogging sets logrus's format ([log] format, --log-format) and level.
func setupLogging(lc config.LogConfig) error {
	switch lc.Format {
	case "json":
		logrus.SetFormatter(&logrus.JSONFormatter{})
	case "text", "":
		logrus.SetFormatter(&logrus.TextFormatter{FullTimestamp: true})
	default:
		return fmt.Errorf("unsupported log type %q: use --log-format text or json", lc.Format)
	}
	level := lc.Level
	if level == "" {
		level = "info"
	}
	l, err := logrus.ParseLevel(level)
	if err != nil {
		return fmt.Errorf("unsupported log level: %w", err)
	}
	logrus.SetLevel(l)
	bklog.L.Logger.SetLevel(l)
	return nil
}
