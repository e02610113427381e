package soci_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/lade-build/lade/soci"
)

// goSourceLayer is a tar of Go's source tree (real text) cut at 64 MiB,
// gzipped by compress/gzip at its default level, as docker and stock
// BuildKit write layers.
func goSourceLayer(b *testing.B) (tarball, blob []byte) {
	b.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	root := filepath.Join(runtime.GOROOT(), "src")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || buf.Len() > 64<<20 {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if err := tw.WriteHeader(&tar.Header{Name: rel, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
	if err != nil || tw.Close() != nil {
		b.Fatal(err)
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(buf.Bytes())
	zw.Close()
	return buf.Bytes(), z.Bytes()
}

// BenchmarkForeignGzip compares, on one compress/gzip layer of Go's
// source: compress/gzip's inflate alone, and lade's zTOC build (its own
// inflater, CRC, file table, windows, span hashes). MB/s is of the tar.
func BenchmarkForeignGzip(b *testing.B) {
	tarball, blob := goSourceLayer(b)
	b.Run("compress-gzip-inflate", func(b *testing.B) {
		b.SetBytes(int64(len(tarball)))
		for b.Loop() {
			zr, err := gzip.NewReader(bytes.NewReader(blob))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, zr); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("lade-ztoc", func(b *testing.B) {
		b.SetBytes(int64(len(tarball)))
		for b.Loop() {
			if _, err := soci.FromGzip(bytes.NewReader(blob), soci.DefaultSpanSize, 1<<20); err != nil {
				b.Fatal(err)
			}
		}
	})
}
