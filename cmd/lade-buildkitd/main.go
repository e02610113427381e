// Package main is the lade-buildkitd command, a buildkitd-compatible build
// daemon whose image, oci and docker exporters are lade's. It runs one OCI worker (runc,
// with the overlayfs or native snapshotter), the built-in Dockerfile
// frontend and the gateway frontend, and serves BuildKit's API, so the
// stock buildctl, buildx's remote driver and any BuildKit client use it
// unchanged: `buildctl --addr unix:///run/buildkit/buildkitd.sock build ...`.
//
// Flags and the TOML config file (--config, default
// /etc/buildkit/buildkitd.toml) are buildkitd's where they apply.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/moby/buildkit/util/apicaps"
	"github.com/moby/buildkit/util/appdefaults"
	"github.com/moby/buildkit/util/bklog"
	"github.com/moby/buildkit/util/stack"
	"github.com/moby/buildkit/util/tracing/detect"
	"github.com/moby/buildkit/version"
	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v3"
)

func init() {
	apicaps.ExportedProduct = "buildkit"
	bi, _ := debug.ReadBuildInfo()
	setVersion(bi)
	stack.SetVersionInfo(version.Version, version.Revision)
	detect.Recorder = detect.NewTraceRecorder()
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newApp().Run(ctx, os.Args)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "lade-buildkitd: %v\n", err)
		os.Exit(1)
	}
}

// newApp returns the command line of the daemon.
func newApp() *cli.Command {
	return &cli.Command{
		Name:                      "lade-buildkitd",
		Usage:                     "BuildKit daemon with lade's image exporters",
		Version:                   versionString(),
		DisableSliceFlagSeparator: true,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Usage: "path to config `FILE` (buildkitd.toml)", Value: appdefaults.ConfigDir + "/buildkitd.toml", Sources: cli.EnvVars("BUILDKITD_CONFIG")},
			&cli.BoolFlag{Name: "debug", Usage: "enable debug output in logs"},
			&cli.StringFlag{Name: "log-level", Usage: "log level: error, warn, info, debug or trace", Value: "info", Sources: cli.EnvVars("BUILDKITD_LOG_LEVEL")},
			&cli.StringFlag{Name: "root", Usage: "path to state `DIR`", Value: appdefaults.Root},
			&cli.StringSliceFlag{Name: "addr", Usage: "listening `ADDRESS` (unix:///path or tcp://host:port), repeatable", Value: []string{appdefaults.Address}},
			&cli.StringFlag{Name: "group", Usage: "group (name or gid) owning the unix sockets"},
			&cli.StringFlag{Name: "oci-worker", Usage: "enable oci workers (true/false/auto)", Value: "auto"},
			&cli.StringFlag{Name: "containerd-worker", Usage: "enable containerd workers (true/false/auto)", Value: "auto"},
			&cli.StringFlag{Name: "oci-worker-snapshotter", Usage: "snapshotter: auto, overlayfs or native", Value: "auto"},
			&cli.StringFlag{Name: "oci-worker-binary", Usage: "name or path of the OCI runtime binary", Value: "runc"},
			&cli.StringSliceFlag{Name: "oci-worker-platform", Usage: "platforms the worker builds for (default: the host's and its emulators')"},
			&cli.StringFlag{Name: "oci-worker-net", Usage: "network mode of RUN steps: auto, cni or host", Value: "auto"},
			&cli.StringSliceFlag{Name: "oci-worker-labels", Usage: "worker labels `KEY=VALUE`"},
			&cli.BoolFlag{Name: "oci-worker-gc", Usage: "garbage-collect the build cache", Value: true},
			&cli.IntFlag{Name: "oci-max-parallelism", Usage: "maximum parallel build steps (0: unlimited)"},
			&cli.StringSliceFlag{Name: "allow-insecure-entitlement", Usage: "allow an insecure entitlement: network.host, security.insecure or device"},
			&cli.StringFlag{Name: "differ", Usage: "layer differ: lade (parallel read-ahead, the same tars) or buildkit (BuildKit's overlay and walking differs)", Value: differLade, Sources: cli.EnvVars("LADE_DIFFER")},
			&cli.StringFlag{Name: "debugaddr", Usage: "serve Go profiles (/debug/pprof/) on `ADDRESS` (host:port, tcp://host:port or unix:///path)", Sources: cli.EnvVars("BUILDKITD_DEBUGADDR")},
		},
		Action: run,
	}
}

// run starts the daemon and serves until ctx ends.
func run(ctx context.Context, c *cli.Command) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("lade-buildkitd runs as root (the OCI worker mounts snapshots and runs runc)")
	}
	cfg, err := loadConfig(c)
	if err != nil {
		return err
	}
	if err := setupLogging(cfg.Log.Level); err != nil {
		return err
	}
	if cfg.GRPC.DebugAddress != "" {
		stop, err := serveDebug(ctx, cfg.GRPC.DebugAddress)
		if err != nil {
			return err
		}
		defer stop()
	}
	d, err := newDaemon(ctx, cfg, c.String("differ"))
	if err != nil {
		return err
	}
	defer d.close()
	return d.serve(ctx)
}

// setupLogging sets logrus's level and format.
func setupLogging(level string) error {
	logrus.SetFormatter(&logrus.TextFormatter{FullTimestamp: true})
	if level == "" {
		level = "info"
	}
	l, err := logrus.ParseLevel(level)
	if err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	logrus.SetLevel(l)
	bklog.L.Logger.SetLevel(l)
	return nil
}
