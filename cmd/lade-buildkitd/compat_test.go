package main

import (
	"context"
	"testing"

	"github.com/lade-build/lade/buildkit"
	"github.com/urfave/cli/v3"
)

// TestCompatFlags checks the switches set the exporters' daemon defaults,
// from the command line and from the environment.
func TestCompatFlags(t *testing.T) {
	defer buildkit.SetDaemonDefaults(buildkit.Defaults{})
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want buildkit.Defaults
	}{
		{nil, nil, buildkit.Defaults{}},
		{[]string{"--keep-empty-layers"}, nil, buildkit.Defaults{KeepEmptyLayers: true}},
		{[]string{"--gzip-compat"}, nil, buildkit.Defaults{GzipCompat: true}},
		{[]string{"--stock-tar-metadata"}, nil, buildkit.Defaults{StockTarMetadata: true}},
		{nil, map[string]string{"LADE_STOCK_COMPAT": "1"}, buildkit.Defaults{KeepEmptyLayers: true, GzipCompat: true, StockTarMetadata: true}},
	} {
		buildkit.SetDaemonDefaults(buildkit.Defaults{})
		for k, v := range tc.env {
			t.Setenv(k, v)
		}
		cmd := &cli.Command{Name: "x", Flags: compatFlags(), Action: func(context.Context, *cli.Command) error { return nil }}
		if err := cmd.Run(context.Background(), append([]string{"x"}, tc.args...)); err != nil {
			t.Fatal(err)
		}
		if got := buildkit.DaemonDefaults(); got != tc.want {
			t.Errorf("%v %v: defaults %+v, want %+v", tc.args, tc.env, got, tc.want)
		}
	}
}
