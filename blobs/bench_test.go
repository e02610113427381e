package blobs_test

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/lade-build/lade/blobs"
	"github.com/lade-build/lade/cache"
)

var (
	benchOnce sync.Once
	benchDir  string
	benchSize int64
)

// mixedTree writes a directory of $LADE_BENCH_MB MiB (default 512): a
// third compressible text, a third random bytes, a third 16 KiB files.
func mixedTree(b *testing.B) (string, int64) {
	benchOnce.Do(func() {
		mb := 512
		if v, err := strconv.Atoi(os.Getenv("LADE_BENCH_MB")); err == nil && v > 0 {
			mb = v
		}
		dir, err := os.MkdirTemp("", "lade-bench")
		if err != nil {
			b.Fatal(err)
		}
		benchDir = filepath.Join(dir, "tree")
		rng := rand.New(rand.NewSource(1))
		third := int64(mb) << 20 / 3
		words := []string{"func ", "return ", "err ", "if ", "nil", "{\n", "}\n", "context ", "package ", "import "}
		text := make([]byte, 0, 1<<20)
		for len(text) < 1<<20 {
			text = append(text, words[rng.Intn(len(words))]...)
		}
		write := func(name string, size int64, fill func([]byte)) {
			p := filepath.Join(benchDir, name)
			_ = os.MkdirAll(filepath.Dir(p), 0o755)
			f, err := os.Create(p)
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, 1<<20)
			for left := size; left > 0; {
				n := min(left, int64(len(buf)))
				fill(buf[:n])
				_, _ = f.Write(buf[:n])
				left -= n
			}
			_ = f.Close()
			benchSize += size
		}
		write("text", third, func(p []byte) { copy(p, text) })
		write("random", third, func(p []byte) { rng.Read(p) })
		for i := int64(0); i*16384 < third; i++ {
			write(fmt.Sprintf("small/%03d/%06d", i/1000, i), 16384, func(p []byte) { copy(p, text[i%1000:]) })
		}
	})
	return benchDir, benchSize
}

// BenchmarkExportDir measures lade's one-pass pipeline (tar generation,
// diffID, compression, blob digest, content store) per compression.
func BenchmarkExportDir(b *testing.B) {
	dir, size := mixedTree(b)
	for _, typ := range []blobs.Type{blobs.Gzip, blobs.GzipCompat, blobs.Zstd, blobs.Uncompressed} {
		b.Run(string(typ), func(b *testing.B) {
			b.SetBytes(size)
			for i := 0; i < b.N; i++ {
				s := store(b)
				ref, err := cache.NewDirRef(dir, nil, cache.DirOptions{})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := blobs.GetDiffPairs(context.Background(), s, ref, blobs.Options{Compression: blobs.Compression{Type: typ}}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBaselineStdlibGzip: the same tar through Go's single-threaded
// compress/gzip with both hashes, stock BuildKit's pipeline.
func BenchmarkBaselineStdlibGzip(b *testing.B) {
	dir, size := mixedTree(b)
	b.SetBytes(size)
	for i := 0; i < b.N; i++ {
		ref, _ := cache.NewDirRef(dir, nil, cache.DirOptions{})
		rc, err := ref.Diff(context.Background(), cache.DiffOptions{})
		if err != nil {
			b.Fatal(err)
		}
		blobHash := sha256.New()
		zw := gzip.NewWriter(blobHash)
		if _, err := io.Copy(io.MultiWriter(sha256.New(), zw), rc); err != nil {
			b.Fatal(err)
		}
		_ = zw.Close()
		rc.Close()
	}
}

// BenchmarkBaselineTar: GNU tar reading the tree (tar generation floor).
func BenchmarkBaselineTar(b *testing.B) {
	benchShell(b, "tar -C %s -cf - . | cat > /dev/null")
}

// BenchmarkBaselinePigz: GNU tar piped into pigz on 2 threads.
func BenchmarkBaselinePigz(b *testing.B) {
	benchShell(b, "tar -C %s -cf - . | pigz -p 2 -6 > /dev/null")
}

func benchShell(b *testing.B, script string) {
	dir, size := mixedTree(b)
	if _, err := exec.LookPath("pigz"); err != nil {
		b.Fatal("pigz not installed: run hack/install-test-deps.sh")
	}
	b.SetBytes(size)
	for i := 0; i < b.N; i++ {
		if out, err := exec.Command("sh", "-c", fmt.Sprintf(script, dir)).CombinedOutput(); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
	}
}
