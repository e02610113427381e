package cache_test

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	cfs "github.com/containerd/continuity/fs"
	"github.com/lade-build/lade/cache"
)

// BenchmarkTarPath measures the tar path alone: the layer tar of a whole
// tree (LADE_BENCH_TREE, default the Go toolchain's GOROOT, ~16,700
// entries and ~250 MB of tar), written to io.Discard with the page cache
// warm, read directly (dir: DirRef) and, as root, through a read-only
// overlay view while the raw tree is walked (overlay: lade-buildkitd's
// overlay differ before UpperdirWalk) and, as root, as an upperdir over an
// empty lower tree (upperdir: UpperdirWalk, files read from the tree,
// only security.capability kept, as lade-buildkitd's differ). Besides time and bytes per second
// it reports the process's CPU-seconds (user+system, every goroutine) per
// GB of tar and the heap allocations per tar entry. docs/performance.md
// ("tar path") cites it:
//
//	go test ./cache/ -run '^$' -bench TarPath -benchtime 5x
func BenchmarkTarPath(b *testing.B) {
	tree := os.Getenv("LADE_BENCH_TREE")
	if tree == "" {
		tree = runtime.GOROOT()
	}
	b.Run("dir", func(b *testing.B) {
		r, err := cache.NewDirRef(tree, nil, cache.DirOptions{})
		if err != nil {
			b.Fatal(err)
		}
		benchTar(b, r)
	})
	b.Run("overlay", func(b *testing.B) {
		if os.Geteuid() != 0 {
			b.Fatal("run as root: the overlay case mounts a view of the tree")
		}
		view := overlayView(b, tree)
		r, err := cache.NewChangesRef("bench:"+tree, func(ctx context.Context, write cache.WriteChanges) error {
			return write(view, func(ctx context.Context, fn cfs.ChangeFunc) error {
				return cfs.Changes(ctx, "", tree, fn)
			})
		}, cache.ChangesOptions{})
		if err != nil {
			b.Fatal(err)
		}
		benchTar(b, r)
	})
	b.Run("upperdir", func(b *testing.B) {
		if os.Geteuid() != 0 {
			b.Fatal("run as root: the upperdir case mounts a view of the tree")
		}
		view, base := overlayView(b, tree), b.TempDir()
		r, err := cache.NewChangesRef("bench:"+tree, func(ctx context.Context, write cache.WriteChanges) error {
			return write(view, cache.UpperdirWalk(tree, view, base))
		}, cache.ChangesOptions{OnlyCapabilityXattr: true})
		if err != nil {
			b.Fatal(err)
		}
		benchTar(b, r)
	})
}

// benchTar writes r's layer tar b.N times and reports the metrics of
// BenchmarkTarPath.
func benchTar(b *testing.B, r cache.Ref) {
	size, entries := tarStats(b, r) // also warms the page cache
	b.SetBytes(size)
	b.ReportAllocs()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mallocs := ms.Mallocs
	cpu := processCPU(b)
	b.ResetTimer()
	for range b.N {
		rc, err := r.Layer().Diff(context.Background(), cache.DiffOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			b.Fatal(err)
		}
		_ = rc.Close()
	}
	b.StopTimer()
	cpu = processCPU(b) - cpu
	runtime.ReadMemStats(&ms)
	gb := float64(size) * float64(b.N) / 1e9
	b.ReportMetric(cpu.Seconds()/gb, "cpu-s/GB")
	b.ReportMetric(float64(ms.Mallocs-mallocs)/float64(entries)/float64(b.N), "allocs/entry")
}

// tarStats returns the size and number of entries of r's layer tar.
func tarStats(b *testing.B, r cache.Ref) (size int64, entries int) {
	rc, err := r.Layer().Diff(context.Background(), cache.DiffOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer rc.Close()
	cr := &countReader{r: rc}
	tr := tar.NewReader(cr)
	for {
		_, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		entries++
	}
	if _, err := io.Copy(io.Discard, cr); err != nil {
		b.Fatal(err)
	}
	return cr.n, entries
}

// countReader counts the bytes read through it.
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// processCPU returns the user and system CPU time of the process so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
