package blobs

import (
	"archive/tar"
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	codecTarOnce sync.Once
	codecTar     []byte
)

// benchTar returns the tar the codec benchmarks compress: the file named
// by $LADE_BENCH_TAR, else a tar of the Go toolchain's tree (GOROOT, about
// 245 MB), made once in memory.
func benchTar(b *testing.B) []byte {
	codecTarOnce.Do(func() {
		if p := os.Getenv("LADE_BENCH_TAR"); p != "" {
			data, err := os.ReadFile(p)
			if err != nil {
				b.Fatalf("LADE_BENCH_TAR: %v", err)
			}
			codecTar = data
			return
		}
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		root := runtime.GOROOT()
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			if err := tw.WriteHeader(&tar.Header{Name: rel, Mode: 0o644, Size: int64(len(data))}); err != nil {
				return err
			}
			_, err = tw.Write(data)
			return err
		})
		if err != nil || tw.Close() != nil {
			b.Fatalf("tar of %s: %v", root, err)
		}
		codecTar = buf.Bytes()
	})
	return codecTar
}

// processCPU is the CPU time (user and system) of the process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// byteCounter counts what is written to it.
type byteCounter struct{ n int64 }

func (c *byteCounter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// BenchmarkCodecs compresses one tar with each encoder lade has, in
// writes of 32 KiB as the differ does, and reports CPU-seconds per pass
// (the whole process's, so codec goroutines count), output MB, and the
// output's size and CPU against stock's (Go compress/gzip -6, GzipCompat).
// Native encoders are measured only in binaries built with -tags native.
func BenchmarkCodecs(b *testing.B) {
	data := benchTar(b)
	level := func(l int) *int { return &l }
	cases := []struct {
		name, codecs, zstd string // CodecsEnv and ZstdCodecEnv
		c                  Compression
	}{
		{"stock-gzip-6", "go", "", Compression{Type: GzipCompat}},
		{"pargzip-6", "go", "", Compression{Type: Gzip}},
		{"native-gzip-6", "native", "", Compression{Type: Gzip}},
		{"native-gzip-5", "native", "", Compression{Type: Gzip, Level: level(5)}},
		{"native-gzip-7", "native", "", Compression{Type: Gzip, Level: level(7)}},
		{"stock-gzip-9", "go", "", Compression{Type: GzipCompat, Level: level(9)}},
		{"native-gzip-9", "native", "", Compression{Type: Gzip, Level: level(9)}},
		{"native-gzip-1", "native", "", Compression{Type: Gzip, Level: level(1)}},
		{"native-gzip-2", "native", "", Compression{Type: Gzip, Level: level(2)}},
		{"native-gzip-3", "native", "", Compression{Type: Gzip, Level: level(3)}},
		{"klauspost-zstd-3", "go", "go", Compression{Type: Zstd}},
		{"libzstd-3", "native", "libzstd", Compression{Type: Zstd}},
	}
	var stockCPU, stockBytes float64
	for _, c := range cases {
		if c.codecs == "native" && !NativeCodecs() {
			continue
		}
		b.Run(c.name, func(b *testing.B) {
			b.Setenv(CodecsEnv, c.codecs)
			b.Setenv(ZstdCodecEnv, c.zstd)
			b.SetBytes(int64(len(data)))
			var out byteCounter
			cpu0 := processCPU()
			for i := 0; i < b.N; i++ {
				out = byteCounter{}
				zw, err := c.c.NewWriter(&out, 2)
				if err != nil {
					b.Fatal(err)
				}
				for off := 0; off < len(data); off += 32 << 10 {
					_, _ = zw.Write(data[off:min(off+32<<10, len(data))])
				}
				if err := zw.Close(); err != nil {
					b.Fatal(err)
				}
			}
			cpu := (processCPU() - cpu0).Seconds() / float64(b.N)
			if c.name == "stock-gzip-6" {
				stockCPU, stockBytes = cpu, float64(out.n)
			}
			b.ReportMetric(cpu, "cpu-s/op")
			b.ReportMetric(float64(out.n)/1e6, "MB")
			if stockBytes > 0 {
				b.ReportMetric(float64(out.n)/stockBytes, "bytes/stock")
				b.ReportMetric(cpu/stockCPU, "cpu/stock")
			}
		})
	}
}
