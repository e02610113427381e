package exporter_test

import (
	"context"
	"fmt"
	"math/rand"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/lade-build/lade/blobs"
	"github.com/lade-build/lade/cache"
	"github.com/lade-build/lade/exporter"
	"github.com/lade-build/lade/exporter/exportertest"
)

// benchChain returns a chain of n in-memory layers of about mib MiB each,
// half compressible text and half random bytes, bottom first.
func benchChain(n, mib int) *exportertest.MemRef {
	rnd := rand.New(rand.NewSource(1))
	var top *exportertest.MemRef
	for i := range n {
		noise := make([]byte, mib<<19)
		rnd.Read(noise)
		text := strings.Repeat(fmt.Sprintf("layer %d: the quick brown fox\n", i), (mib<<19)/30)
		r := &exportertest.MemRef{
			RefID: fmt.Sprintf("bench-%d", i),
			Desc:  fmt.Sprintf("COPY part%d /", i),
			Files: map[string]string{fmt.Sprintf("part%d/", i): "", fmt.Sprintf("part%d/text", i): text, fmt.Sprintf("part%d/noise", i): string(noise)},
		}
		if top != nil {
			r.Up = top
		}
		top = r
	}
	return top
}

// BenchmarkCommit measures ImageWriter.Commit end to end into a containerd
// local content store: cold (every layer diffed, hashed, compressed and
// written) per compression, and warm (the blob cache answers, no layer
// data read), the exporter's two regimes. hack/bench compares the same
// work with stock BuildKit.
func BenchmarkCommit(b *testing.B) {
	ctx := context.Background()
	const layers, mib = 4, 8
	ref := benchChain(layers, mib)
	src := exporter.Source{Platforms: []exporter.PlatformSource{{Ref: ref}}}
	for _, typ := range []blobs.Type{blobs.Gzip, blobs.Zstd, blobs.Uncompressed, blobs.GzipCompat} {
		b.Run("cold/"+string(typ), func(b *testing.B) {
			b.SetBytes(layers * mib << 20)
			for b.Loop() {
				s, err := local.NewStore(b.TempDir())
				if err != nil {
					b.Fatal(err)
				}
				opts := exporter.Options{Compression: blobs.Compression{Type: typ}}
				if _, err := exporter.NewImageWriter(s).Commit(ctx, src, opts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("warm", func(b *testing.B) {
		s, err := local.NewStore(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		bc := &blobs.MemoryCache{}
		w := exporter.NewImageWriter(s)
		if _, err := w.Commit(ctx, src, exporter.Options{Cache: bc}); err != nil {
			b.Fatal(err)
		}
		diffs := totalDiffs(ref)
		for b.Loop() {
			if _, err := exporter.NewImageWriter(s).Commit(ctx, src, exporter.Options{Cache: bc}); err != nil {
				b.Fatal(err)
			}
		}
		if got := totalDiffs(ref); got != diffs {
			b.Fatalf("warm exports read layer data: %d diffs, want %d", got, diffs)
		}
	})
}

// totalDiffs counts the Diff calls of a MemRef chain.
func totalDiffs(r cache.Ref) int32 {
	var n int32
	for ; r != nil; r = r.Parent() {
		n += r.(*exportertest.MemRef).Diffs.Load()
	}
	return n
}
