package blobs_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lade-build/lade/blobs"
	"github.com/lade-build/lade/cache"
)

// fileRef is a ref whose layer is a tar file on disk.
type fileRef struct{ id, path string }

func (r fileRef) ID() string                 { return r.id }
func (r fileRef) Parent() cache.Ref          { return nil }
func (r fileRef) Description() string        { return r.id }
func (r fileRef) CreatedAt() time.Time       { return time.Time{} }
func (r fileRef) Layer() cache.Layer         { return r }
func (r fileRef) Stored() (cache.Blob, bool) { return cache.Blob{}, false }
func (r fileRef) Size() int64 {
	fi, _ := os.Stat(r.path)
	return fi.Size()
}
func (r fileRef) Diff(context.Context, cache.DiffOptions) (io.ReadCloser, error) {
	return os.Open(r.path)
}

var (
	benchOnce sync.Once
	benchTar  string
)

// mixedTar writes a tar of $LADE_BENCH_MB MiB (default 512): a third
// compressible text, a third random bytes, a third small files.
func mixedTar(b *testing.B) string {
	benchOnce.Do(func() {
		mb := 512
		if v, err := strconv.Atoi(os.Getenv("LADE_BENCH_MB")); err == nil && v > 0 {
			mb = v
		}
		dir, _ := os.MkdirTemp("", "lade-bench")
		benchTar = filepath.Join(dir, "mixed.tar")
		f, err := os.Create(benchTar)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		tw := tar.NewWriter(f)
		rng := rand.New(rand.NewSource(1))
		third := int64(mb) << 20 / 3
		words := []string{"func ", "return ", "err ", "if ", "nil", "{\n", "}\n", "context ", "package ", "import "}
		text := make([]byte, 0, 1<<20)
		for len(text) < 1<<20 {
			text = append(text, words[rng.Intn(len(words))]...)
		}
		random := make([]byte, 1<<20)
		write := func(name string, size int64, fill func([]byte)) {
			_ = tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, Typeflag: tar.TypeReg})
			buf := make([]byte, 1<<20)
			for left := size; left > 0; {
				n := min(left, int64(len(buf)))
				fill(buf[:n])
				_, _ = tw.Write(buf[:n])
				left -= n
			}
		}
		write("text", third, func(p []byte) { copy(p, text) })
		write("random", third, func(p []byte) { rng.Read(random); copy(p, random) })
		for i := int64(0); i*16384 < third; i++ {
			write(fmt.Sprintf("small/%06d", i), 16384, func(p []byte) { copy(p, text[i%1000:]) })
		}
		_ = tw.Close()
	})
	return benchTar
}

// BenchmarkDiffPairs measures the one-pass pipeline per compression.
func BenchmarkDiffPairs(b *testing.B) {
	path := mixedTar(b)
	fi, _ := os.Stat(path)
	for _, typ := range []blobs.Type{blobs.Gzip, blobs.GzipCompat, blobs.Zstd, blobs.Uncompressed} {
		b.Run(string(typ), func(b *testing.B) {
			b.SetBytes(fi.Size())
			for i := 0; i < b.N; i++ {
				s := store(b)
				ref := fileRef{id: fmt.Sprint(i), path: path}
				if _, err := blobs.GetDiffPairs(context.Background(), s, ref, blobs.Options{Compression: blobs.Compression{Type: typ}}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBaselineStdlibGzip is the same bytes through Go's
// single-threaded compress/gzip with both hashes: stock BuildKit's pipeline.
func BenchmarkBaselineStdlibGzip(b *testing.B) {
	path := mixedTar(b)
	fi, _ := os.Stat(path)
	b.SetBytes(fi.Size())
	for i := 0; i < b.N; i++ {
		f, _ := os.Open(path)
		blobHash := sha256.New()
		zw := gzip.NewWriter(blobHash)
		diffHash := sha256.New()
		if _, err := io.Copy(io.MultiWriter(diffHash, zw), f); err != nil {
			b.Fatal(err)
		}
		_ = zw.Close()
		f.Close()
	}
}
