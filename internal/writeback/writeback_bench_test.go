package writeback

import (
	"context"
	"crypto/rand"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	digest "github.com/opencontainers/go-digest"
)

// BenchmarkWriteCommit writes a 256 MiB blob into containerd's local
// content store and commits it (which fsyncs it), with the write-back
// started behind the writes every 8 MiB and without. It reports the
// commit's wait (the fsync left after the last byte) and the process's
// CPU per blob beside the wall time. The store is in LADE_BENCH_DIR when
// set (e.g. a journaled file system), else in a test directory.
//
//	go test -run - -bench WriteCommit -benchtime 5x ./internal/writeback
func BenchmarkWriteCommit(b *testing.B) {
	chunk := make([]byte, 1<<20)
	if _, err := rand.Read(chunk); err != nil {
		b.Fatal(err)
	}
	const size = 256 << 20
	h := digest.SHA256.Digester()
	for range size / len(chunk) {
		h.Hash().Write(chunk)
	}
	want := h.Digest()
	for _, bc := range []struct {
		name  string
		every int64
	}{{"off", 0}, {"every=8MiB", 8 << 20}} {
		b.Run(bc.name, func(b *testing.B) {
			dir := b.TempDir()
			if d := os.Getenv("LADE_BENCH_DIR"); d != "" {
				var err error
				if dir, err = os.MkdirTemp(d, "writeback-"); err != nil {
					b.Fatal(err)
				}
				defer os.RemoveAll(dir)
			}
			cs, err := local.NewStore(dir)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			var commitWait time.Duration
			cpu0 := processCPU()
			b.SetBytes(size)
			b.ResetTimer()
			for i := range b.N {
				cw, err := content.OpenWriter(ctx, cs, content.WithRef("bench-"+bc.name+"-"+string(rune('a'+i%26))))
				if err != nil {
					b.Fatal(err)
				}
				w := cw
				if bc.every > 0 {
					w = Wrap(cw, bc.every)
				}
				for range size / len(chunk) {
					if _, err := w.Write(chunk); err != nil {
						b.Fatal(err)
					}
				}
				t := time.Now()
				if err := w.Commit(ctx, size, want); err != nil {
					b.Fatal(err)
				}
				commitWait += time.Since(t)
				w.Close()
				b.StopTimer()
				if err := cs.Delete(ctx, want); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(commitWait.Seconds()/float64(b.N), "commit-s/op")
			b.ReportMetric((processCPU()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
		})
	}
}

// processCPU is the process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
