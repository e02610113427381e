// Package main is the lade command. lade turns directories, layer
// tarballs and base images into OCI and Docker images: into its embedded
// store, OCI layouts, docker archives and registries. See `lade --help`.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/containerd/log"
	"github.com/lade-build/lade/exporter/push"
	"github.com/lade-build/lade/imagestore"
	"github.com/lade-build/lade/internal/writeback"
	"github.com/lade-build/lade/progress"
	"github.com/lade-build/lade/registries"
	"github.com/lade-build/lade/transfer"
	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v3"
)

// main runs lade and prints its error, if any, on one line.
func main() {
	if err := writeback.CheckEnv(); err != nil {
		fmt.Fprintln(os.Stderr, "lade: "+oneLine(err))
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newApp().Run(ctx, os.Args)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "lade: "+oneLine(err))
		os.Exit(1)
	}
}

// newApp builds the lade command tree.
func newApp() *cli.Command {
	app := &cli.Command{
		Name:                      "lade",
		Version:                   buildVersion(),
		DisableSliceFlagSeparator: true,
		Usage:                     "turn filesystem snapshots into OCI and Docker images",
		Description: `lade commits directories, layer tarballs and base images into single- or
multi-platform images, computing each layer in one pass (tar, diffID,
compression, blob digest) with layers in parallel, dropping empty layers and
keeping history consistent. Images go to lade's embedded store (--root), to
OCI layouts, docker archives and registries.

Environment: LADE_WRITEBACK_MIB=N hands a blob's pages to the disk every N MiB
while it is written, so its final fsync waits less (default: off; see
docs/performance.md for when it helps).`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "root", Usage: "embedded store `DIR`", Value: imagestore.DefaultRoot(), Sources: cli.EnvVars("LADE_ROOT")},
			&cli.BoolFlag{Name: "debug", Usage: "log debug messages"},
			&cli.StringFlag{Name: "registry-ca", Usage: "PEM `FILE` of a CA to trust for registries, besides the system's", Sources: cli.EnvVars("LADE_REGISTRY_CA")},
			&cli.BoolFlag{Name: "insecure-registry", Usage: "allow plain HTTP and unverified TLS for every registry (pushes, pulls, copies and docker:// bases)"},
			&cli.StringFlag{Name: "registries-conf", Usage: "containers-registries.conf(5) `FILE` for short names, mirrors, insecure and blocked registries (default: podman's files, $HOME/.config/containers/registries.conf or /etc/containers/registries.conf and their registries.conf.d)", Sources: cli.EnvVars(registries.EnvConf)},
			&cli.StringFlag{Name: "progress", Usage: "progress output of export and save: auto, tty, plain, rawjson or quiet", Value: string(progress.ModeAuto), Local: true},
		},
		Before: func(ctx context.Context, c *cli.Command) (context.Context, error) {
			level := logrus.ErrorLevel
			if c.Bool("debug") {
				level = logrus.DebugLevel
			}
			logrus.SetLevel(level)
			logrus.SetOutput(os.Stderr)
			if _, err := progress.ParseMode(c.String("progress")); err != nil {
				return ctx, fmt.Errorf("--progress: %w", err)
			}
			return log.WithLogger(ctx, log.L), nil
		},
		Commands: []*cli.Command{
			exportCommand(), imagesCommand(), inspectCommand(), saveCommand(),
			rmCommand(), pruneCommand(), checkCommand(),
			commitCommand(), manifestCommand(), pullCommand(), copyCommand(),
		},
	}
	// "--output type=oci,dest=x" is one value: never split flags on commas.
	// A usage error is one line pointing at --help, not the whole help.
	app.OnUsageError = usageError
	for _, c := range app.Commands {
		c.DisableSliceFlagSeparator = true
		c.OnUsageError = usageError
	}
	return app
}

// usageError reports a command-line mistake on one line.
func usageError(_ context.Context, c *cli.Command, err error, _ bool) error {
	return fmt.Errorf("%w (see %s --help)", err, c.FullName())
}

// openStore opens the embedded store named by --root.
func openStore(ctx context.Context, c *cli.Command) (*imagestore.Store, error) {
	s, err := imagestore.Open(ctx, c.Root().String("root"))
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	return s, nil
}

// withStore opens the progress display and the store, runs fn with both,
// and closes them: the one sequence of every command that shows progress
// while it works on the store.
func withStore(ctx context.Context, c *cli.Command, fn func(*imagestore.Store, progress.Writer) error) error {
	disp, err := newDisplay(c)
	if err != nil {
		return err
	}
	s, err := openStore(ctx, c)
	if err != nil {
		disp.Close()
		return err
	}
	defer s.Close()
	err = fn(s, disp)
	if cerr := disp.Close(); err == nil {
		err = cerr
	}
	return err
}

// progressFlag is --progress.
var progressFlag = &cli.StringFlag{
	Name:  "progress",
	Usage: "progress output: auto, tty, plain, rawjson or quiet",
	Value: string(progress.ModeAuto),
}

// newDisplay opens the progress display chosen by --progress on stderr.
// In quiet mode it shows nothing: main prints the command's error, which
// carries the failed step's cause, on one line (the display would repeat
// it, with the errors of the steps cancelled after it).
func newDisplay(c *cli.Command) (*progress.Display, error) {
	mode := c.String("progress")
	if !c.IsSet("progress") && c.Root().IsSet("progress") {
		mode = c.Root().String("progress") // lade --progress MODE export ...
	}
	m, err := progress.ParseMode(mode)
	if err != nil {
		return nil, fmt.Errorf("--progress: %w", err)
	}
	var out io.Writer = os.Stderr
	if m == progress.ModeQuiet {
		out = io.Discard
	}
	return progress.NewDisplay(m, out)
}

// oneLine flattens an error message onto one line.
func oneLine(err error) string {
	var exit cli.ExitCoder
	if errors.As(err, &exit) && exit.Error() == "" {
		return "failed"
	}
	b := []byte(err.Error())
	for i, ch := range b {
		if ch == '\n' || ch == '\r' {
			b[i] = ' '
		}
	}
	return string(b)
}

// registrySettings are the registry settings of the global flags, for
// pushes, pulls, copies and docker:// bases.
type registrySettings struct {
	// Options are push's: CA, insecure. Credentials come from the docker
	// config file ($DOCKER_CONFIG or ~/.docker/config.json) and its
	// credential helpers.
	push.Options
	// Conf is the containers-registries.conf configuration (short names,
	// mirrors, insecure and blocked registries).
	Conf *registries.Config
}

// registryOptions reads the registry settings of the global flags and the
// registries configuration (--registries-conf, else podman's files).
func registryOptions(c *cli.Command) (registrySettings, error) {
	conf, err := registries.Load(c.Root().String("registries-conf"))
	if err != nil {
		return registrySettings{}, fmt.Errorf("%w (see --registries-conf)", err)
	}
	return registrySettings{
		Options: push.Options{CAFile: c.Root().String("registry-ca"), Insecure: c.Root().Bool("insecure-registry")},
		Conf:    conf,
	}, nil
}

// transferOptions are reg as options of package transfer.
func (reg registrySettings) transferOptions(pw progress.Writer) transfer.Options {
	return transfer.Options{Registry: reg.Options, Registries: reg.Conf, Progress: pw}
}
