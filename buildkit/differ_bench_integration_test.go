//go:build integration

package buildkit

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/diff"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/plugins/diff/walking"
	"github.com/lade-build/lade/exporter/archive/archivetest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// BenchmarkDifferOverlay diffs overlay layers shaped as hack/bench's
// workload (the Go toolchain tree, one large file, 20,000 small files, each
// COPY'd onto a small base) with the Differ, uncompressed and zstd, and
// reports the process CPU per diff (user + system), which is what the
// export costs on a machine with few cores. The build context is the one
// hack/bench writes: LADE_BENCH_CONTEXT (default
// /var/tmp/lade-bench/context).
func BenchmarkDifferOverlay(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Fatal("run as root: the differ mounts snapshots")
	}
	src := os.Getenv("LADE_BENCH_CONTEXT")
	if src == "" {
		src = "/var/tmp/lade-bench/context"
	}
	if _, err := os.Stat(filepath.Join(src, "go")); err != nil {
		b.Fatalf("no build context (run hack/bench once, or set LADE_BENCH_CONTEXT): %v", err)
	}
	base := b.TempDir()
	lowerDir := filepath.Join(base, "lower")
	benchCopy(b, filepath.Join(src, "base")+"/.", lowerDir)
	lower := []mount.Mount{{Type: "bind", Source: lowerDir, Options: []string{"ro", "rbind"}}}
	for _, layer := range []struct{ name, from, to string }{
		{"go", "go", "usr/local/go"},
		{"random", "random", "data/random"},
		{"small", "small", "data/small"},
	} {
		dir := filepath.Join(base, layer.name)
		upperDir, work := filepath.Join(dir, "upper"), filepath.Join(dir, "work")
		benchCopy(b, filepath.Join(src, layer.from), filepath.Join(upperDir, layer.to))
		if err := os.MkdirAll(work, 0o755); err != nil {
			b.Fatal(err)
		}
		upper := []mount.Mount{{Type: "overlay", Source: "overlay", Options: []string{
			"index=off", "workdir=" + work, "upperdir=" + upperDir, "lowerdir=" + lowerDir,
		}}}
		for _, mt := range []struct{ name, mediaType string }{
			{"uncompressed", ocispecs.MediaTypeImageLayer},
			{"zstd", ocispecs.MediaTypeImageLayerZstd},
		} {
			b.Run(layer.name+"/"+mt.name, func(b *testing.B) {
				cs := archivetest.NewStore(b)
				d := NewDiffer(cs, walking.NewWalkingDiff(cs))
				ctx := context.Background()
				cpu0 := processCPU()
				for i := range b.N {
					_, err := d.Compare(ctx, lower, upper, diff.WithMediaType(mt.mediaType),
						diff.WithReference(layer.name+mt.name+string(rune('a'+i%26))))
					if err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric((processCPU()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
			})
		}
	}
}

// benchCopy copies the tree from to the new directory to (cp -a).
func benchCopy(b *testing.B, from, to string) {
	b.Helper()
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		b.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", from, to).CombinedOutput(); err != nil {
		b.Fatalf("cp -a %s %s: %v: %s", from, to, err, out)
	}
}

// processCPU returns the CPU time (user + system) of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
