//go:build cgo

package blobs

import (
	"archive/tar"
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/awslabs/soci-snapshotter/ztoc"
	"github.com/lade-build/lade/blobs/internal/pargzip"
	"github.com/lade-build/lade/soci"
)

// BenchmarkSoci compares, per layer (64 MiB of Go's own source tree, real
// text at the compression speed of real layers), CPU (cpu-ms/op, user+system of the
// process) and wall time of: lade's plain gzip; gzip with the zTOC built in
// the same pass (soci=true); the two-pass route (plain gzip, then
// soci-snapshotter's own builder over the blob, as its IndexBuilder runs it
// per layer: the blob copied to a file, inflated by zlib for the
// checkpoints and by compress/gzip for the file table); and lade's zTOC of
// a stored blob (one inflate, soci.FromGzip).
//
//	go test ./blobs -run '^$' -bench BenchmarkSoci -benchtime 3x
func BenchmarkSoci(b *testing.B) {
	tarball := sourceTar(b, 64<<20)
	plain := func(b *testing.B) []byte {
		var buf bytes.Buffer
		zw, err := Compression{Type: Gzip}.NewWriter(&buf, 2)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := zw.Write(tarball); err != nil {
			b.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			b.Fatal(err)
		}
		return buf.Bytes()
	}
	blob := plain(b)
	cases := []struct {
		name string
		run  func(b *testing.B)
	}{
		{"gzip", func(b *testing.B) { plain(b) }},
		{"gzip+soci-one-pass", func(b *testing.B) {
			compressSoci(b, nil, tarball, Soci{MinLayerSize: -1}, copyBufSize)
		}},
		{"gzip-then-soci-builder", func(b *testing.B) {
			gz := plain(b)
			path := filepath.Join(b.TempDir(), "layer")
			if err := os.WriteFile(path, gz, 0o600); err != nil {
				b.Fatal(err)
			}
			z, err := ztoc.NewBuilder("bench").BuildZtoc(path, soci.DefaultSpanSize)
			if err != nil {
				b.Fatal(err)
			}
			if _, _, err := ztoc.Marshal(z); err != nil {
				b.Fatal(err)
			}
		}},
		{"soci-of-stored-blob", func(b *testing.B) {
			z, err := soci.FromGzip(bytes.NewReader(blob), soci.DefaultSpanSize, pargzip.BlockSize)
			if err != nil {
				b.Fatal(err)
			}
			_ = z.Marshal()
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(tarball)))
			start := cpuTime()
			for b.Loop() {
				c.run(b)
			}
			b.ReportMetric(float64((cpuTime()-start).Milliseconds())/float64(b.N), "cpu-ms/op")
		})
	}
}

// sourceTar returns a tar of up to limit bytes of GOROOT's files.
func sourceTar(b *testing.B, limit int) []byte {
	b.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	root := filepath.Join(runtime.GOROOT(), "src")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || buf.Len() > limit {
			return err
		}
		info, err := d.Info()
		if err != nil || !(d.IsDir() || info.Mode().IsRegular()) {
			return err
		}
		h, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		h.Name, _ = filepath.Rel(root, path)
		if err := tw.WriteHeader(h); err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
