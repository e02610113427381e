package main

import (
	"context"

	"github.com/lade-build/lade/buildkit"
	"github.com/urfave/cli/v3"
)

// Names of lade's switches for stock-identical images.
const (
	flagKeepEmptyLayers = "keep-empty-layers"
	flagGzipCompat      = "gzip-compat"
	flagStockCompat     = "stock-compat"
	flagStockTarMD      = "stock-tar-metadata"
)

// compatFlags are lade-buildkitd's switches that turn lade's intended
// differences from stock buildkitd off, daemon-wide: the exporters then
// keep empty layers and write gzip with stock's bytes unless an export's
// own attributes say otherwise. With --stock-compat, BuildKit's own
// integration tests that compare digests pass (hack/conformance.sh).
func compatFlags() []cli.Flag {
	set := func(f func(*buildkit.Defaults)) func(context.Context, *cli.Command, bool) error {
		return func(_ context.Context, _ *cli.Command, on bool) error {
			if on {
				d := buildkit.DaemonDefaults()
				f(&d)
				buildkit.SetDaemonDefaults(d)
			}
			return nil
		}
	}
	return []cli.Flag{
		&cli.BoolFlag{Name: flagKeepEmptyLayers, Usage: "keep layers with empty diffs, as stock buildkitd (an export's keep-empty-layers attribute wins)",
			Sources: cli.EnvVars("LADE_KEEP_EMPTY_LAYERS"), Action: set(func(d *buildkit.Defaults) { d.KeepEmptyLayers = true })},
		&cli.BoolFlag{Name: flagGzipCompat, Usage: "write gzip layers with Go's compress/gzip, byte-identical to stock buildkitd's (compression=gzip means gzip-compat)",
			Sources: cli.EnvVars("LADE_GZIP_COMPAT"), Action: set(func(d *buildkit.Defaults) { d.GzipCompat = true })},
		&cli.BoolFlag{Name: flagStockTarMD, Usage: "send type=oci tars once the image is written, with stock buildkitd's file metadata (digest, descriptor), instead of starting them while layers are computed",
			Sources: cli.EnvVars("LADE_STOCK_TAR_METADATA"), Action: set(func(d *buildkit.Defaults) { d.StockTarMetadata = true })},
		&cli.BoolFlag{Name: flagStockCompat, Usage: "--keep-empty-layers, --gzip-compat and --stock-tar-metadata: images and outputs identical to stock buildkitd's",
			Sources: cli.EnvVars("LADE_STOCK_COMPAT"), Action: set(func(d *buildkit.Defaults) {
				*d = buildkit.Defaults{KeepEmptyLayers: true, GzipCompat: true, StockTarMetadata: true}
			})},
	}
}
