package blobs_test

import (
	"archive/tar"
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lade-build/lade/blobs"
	"go.podman.io/storage/pkg/chunked/compressor"
)

var (
	realTreeOnce sync.Once
	realTree     []byte
)

// goTreeTar is the tar of a real tree: $LADE_BENCH_TREE, or the Go
// installation (sources, tests' data, compiled tools).
func goTreeTar(b *testing.B) []byte {
	realTreeOnce.Do(func() {
		root := os.Getenv("LADE_BENCH_TREE")
		if root == "" {
			root = runtime.GOROOT()
		}
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			link := ""
			if info.Mode()&fs.ModeSymlink != 0 {
				link, _ = os.Readlink(p)
			} else if !info.Mode().IsRegular() && !info.IsDir() {
				return nil
			}
			h, err := tar.FileInfoHeader(info, link)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			h.Name = filepath.ToSlash(rel)
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			if info.Mode().IsRegular() {
				data, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				_, err = tw.Write(data)
				return err
			}
			return nil
		})
		if err == nil {
			err = tw.Close()
		}
		if err != nil {
			b.Fatal(err)
		}
		realTree = buf.Bytes()
	})
	return realTree
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// BenchmarkZstdChunkedTree compresses the tar of a real tree with lade's
// zstd, lade's zstd:chunked and containers/storage's zstd:chunked
// compressor (at lade's level 3 and at its own default, 10), fed as lade's
// pipeline feeds a compressor (1 MiB writes). It reports CPU seconds
// (all goroutines) and blob bytes per run.
func BenchmarkZstdChunkedTree(b *testing.B) {
	tarball := goTreeTar(b)
	lade := func(t blobs.Type) func(w io.Writer) (io.WriteCloser, error) {
		return func(w io.Writer) (io.WriteCloser, error) {
			return blobs.Compression{Type: t}.NewWriter(w, runtime.GOMAXPROCS(0))
		}
	}
	storage := func(level int) func(w io.Writer) (io.WriteCloser, error) {
		return func(w io.Writer) (io.WriteCloser, error) {
			return compressor.ZstdCompressor(w, map[string]string{}, &level)
		}
	}
	for _, c := range []struct {
		name string
		new  func(io.Writer) (io.WriteCloser, error)
	}{
		{"zstd", lade(blobs.Zstd)},
		{"zstd-chunked", lade(blobs.ZstdChunked)},
		{"storage-compressor-3", storage(3)},
		{"storage-compressor-10", storage(10)},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(tarball)))
			var cpu time.Duration
			var out countingWriter
			for range b.N {
				out.n = 0
				start := cpuTime()
				zw, err := c.new(&out)
				if err != nil {
					b.Fatal(err)
				}
				for p := tarball; len(p) > 0; p = p[min(len(p), 1<<20):] {
					if _, err := zw.Write(p[:min(len(p), 1<<20)]); err != nil {
						b.Fatal(err)
					}
				}
				if err := zw.Close(); err != nil {
					b.Fatal(err)
				}
				cpu += cpuTime() - start
			}
			b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
			b.ReportMetric(float64(out.n), "blob-bytes")
			b.ReportMetric(float64(len(tarball)), "tar-bytes")
		})
	}
}
