package main

import (
	"bytes"
	"context"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/lade-build/lade/buildkit"
	"github.com/lade-build/lade/exporter/archive"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc"
)

// tarOverTunnel writes blobs (sealed layer blobs of cs with their CRCs) as
// lade's OCI tar stream does, archive.TarWriter in writes of chunk bytes
// (buildkit.StreamChunk), to the tunnel's file, and returns the CPU time
// it took.
func tarOverTunnel(ctx context.Context, tn *tunnel, cs content.Provider, blobs []ocispecs.Descriptor, crcs []uint32, chunk int) (time.Duration, error) {
	return tn.write(ctx, func(w io.Writer) error {
		tw := archive.NewTarWriter(w, time.Time{})
		tw.SetChunk(chunk)
		for i, d := range blobs {
			if err := tw.SealedBlob(ctx, cs, archive.Blob{Desc: d}, crcs[i], nil); err != nil {
				return err
			}
		}
		return tw.Close()
	})
}

// sealedBlobs puts n random blobs of size bytes into a content store under
// dir and returns it, their descriptors and CRC-32Cs.
func sealedBlobs(tb testing.TB, dir string, n, size int) (content.Store, []ocispecs.Descriptor, []uint32) {
	cs, err := local.NewStore(dir)
	if err != nil {
		tb.Fatal(err)
	}
	r := rand.New(rand.NewPCG(7, 8))
	var descs []ocispecs.Descriptor
	var crcs []uint32
	for range n {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(r.Uint32())
		}
		d := ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageLayerGzip, Digest: digest.FromBytes(data), Size: int64(size)}
		if err := content.WriteBlob(context.Background(), cs, d.Digest.String(), bytes.NewReader(data), d); err != nil {
			tb.Fatal(err)
		}
		descs = append(descs, d)
		crcs = append(crcs, crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli)))
	}
	return cs, descs, crcs
}

// TestTarOverTunnel: lade's tar of sealed blobs arrives through the
// tunnel as archive.TarWriter writes it anywhere else.
func TestTarOverTunnel(t *testing.T) {
	ctx := context.Background()
	cs, descs, crcs := sealedBlobs(t, t.TempDir(), 3, 1<<20+777)
	tn, err := newTunnel(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer tn.close()
	if _, err := tarOverTunnel(ctx, tn, cs, descs, crcs, buildkit.StreamChunk); err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	tw := archive.NewTarWriter(&want, time.Time{})
	for _, d := range descs {
		if err := tw.Blob(ctx, cs, archive.Blob{Desc: d}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(tn.file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("the tunnel's file holds %d bytes, not the %d of the tar", len(got), want.Len())
	}
}

// BenchmarkTarStreamAB is lade's OCI tar stream of sealed blobs (the
// daemon's side) over the tunnel to the client's file, in variants (write
// sizes, server options), each over a tunnel of its own, alternated within
// one loop (A then B, then B then A) so that they share the process and
// the machine's state; it reports each one's CPU seconds (both sides) per
// 341 MB. Every goroutine of a variant's tunnel carries the pprof labels
// variant=<name> and side=daemon|client: with -cpuprofile,
// `go tool pprof -tagfocus 'variant=^32K$' -tags` splits one variant's CPU
// by side.
func BenchmarkTarStreamAB(b *testing.B) {
	cs, descs, crcs := sealedBlobs(b, b.TempDir(), 4, 16<<20)
	variants := []struct {
		name  string
		chunk int
		opts  []grpc.ServerOption
		ctx   context.Context
		tn    *tunnel
		cpu   time.Duration
	}{
		{name: "32K", chunk: buildkit.StreamChunk},
		{name: "1M", chunk: 1<<20 - 64},
	}
	for i := range variants {
		v := &variants[i]
		v.ctx = pprof.WithLabels(context.Background(), pprof.Labels("variant", v.name))
		tn, err := newTunnel(v.ctx, b.TempDir(), v.opts...)
		if err != nil {
			b.Fatal(err)
		}
		defer tn.close()
		v.tn = tn
	}
	i := 0
	for b.Loop() {
		for k := range variants {
			v := &variants[(k+i)%len(variants)]
			d, err := tarOverTunnel(v.ctx, v.tn, cs, descs, crcs, v.chunk)
			if err != nil {
				b.Fatal(err)
			}
			v.cpu += d
		}
		i++
	}
	for _, v := range variants {
		b.ReportMetric(v.cpu.Seconds()/float64(b.N)*341e6/float64(64<<20), "cpu-s/341MB-"+v.name)
	}
}
