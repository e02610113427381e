//go:build linux

package exporter_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/lade-build/lade/exporter"
)

// BenchmarkCommitSoci measures a cold export (every layer diffed, hashed,
// compressed and written into a local content store) with lade's gzip,
// without and with soci=true, CPU (cpu-ms/op, the process's user+system
// time) beside wall time.
//
//	go test ./exporter -run '^$' -bench BenchmarkCommitSoci -benchtime 5x -count 3
func BenchmarkCommitSoci(b *testing.B) {
	ctx := context.Background()
	const layers, mib = 4, 16
	src := exporter.Source{Platforms: []exporter.PlatformSource{{Ref: benchChain(layers, mib)}}}
	for _, c := range []struct {
		name string
		opts exporter.Options
	}{
		{"gzip", exporter.Options{}},
		{"gzip+soci", exporter.Options{Soci: true, SociMinLayerSize: -1}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(layers * mib << 20)
			start := processCPU()
			for b.Loop() {
				s, err := local.NewStore(b.TempDir())
				if err != nil {
					b.Fatal(err)
				}
				if _, err := exporter.NewImageWriter(s).Commit(ctx, src, c.opts); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((processCPU()-start).Milliseconds())/float64(b.N), "cpu-ms/op")
		})
	}
}

// processCPU is the process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
