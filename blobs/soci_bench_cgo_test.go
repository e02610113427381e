//go:build cgo

package blobs

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/awslabs/soci-snapshotter/ztoc"
	"github.com/lade-build/lade/blobs/internal/pargzip"
	"github.com/lade-build/lade/soci"
)

// BenchmarkSoci compares, per layer, CPU (cpu-ms/op, user+system of the
// process) and wall time of: lade's plain gzip; gzip with the zTOC built in
// the same pass (soci=true); the two-pass route (plain gzip, then
// soci-snapshotter's own builder over the blob, as its IndexBuilder runs it
// per layer: the blob copied to a file, inflated by zlib for the
// checkpoints and by compress/gzip for the file table); and lade's zTOC of
// a stored blob (one inflate, soci.FromGzip).
//
//	go test ./blobs -run '^$' -bench BenchmarkSoci -benchtime 3x
func BenchmarkSoci(b *testing.B) {
	tarball := sociTree(b, 12)
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

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
