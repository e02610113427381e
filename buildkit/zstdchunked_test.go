package buildkit

import (
	"archive/tar"
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/lade-build/lade/blobs"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// storeBlob compresses a small tar through BuildKit's use of ct and
// writes the blob into cs.
func storeBlob(t *testing.T, ctx context.Context, cs content.Store, ct interface{ MediaType() string }, blob []byte) ocispecs.Descriptor {
	t.Helper()
	d := ocispecs.Descriptor{MediaType: ct.MediaType(), Digest: digest.FromBytes(blob), Size: int64(len(blob))}
	if err := content.WriteBlob(ctx, cs, d.Digest.String(), bytes.NewReader(blob), d); err != nil {
		t.Fatal(err)
	}
	return d
}

func smallTar(t *testing.T) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	data := strings.Repeat("zstd:chunked\n", 1000)
	if err := tw.WriteHeader(&tar.Header{Name: "f", Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	_, _ = tw.Write([]byte(data))
	_ = tw.Close()
	return b.Bytes()
}

// TestZstdChunkedConversion: BuildKit's variant lookup asks
// NeedsConversion: a plain zstd blob does not satisfy zstd:chunked, a
// zstd:chunked one satisfies both; restoreZstdChunked gives back the
// annotations BuildKit's cache drops, to zstd:chunked blobs only.
func TestZstdChunkedConversion(t *testing.T) {
	ctx := context.Background()
	cs, err := local.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tb := smallTar(t)
	chunked := storeBlob(t, ctx, cs, ladeZstdChunked, compressWith(t, ctx, ladeZstdChunked, nil, tb))
	plain := storeBlob(t, ctx, cs, ladeZstd, compressWith(t, ctx, ladeZstd, nil, tb))
	for _, c := range []struct {
		typ interface {
			NeedsConversion(context.Context, content.Store, ocispecs.Descriptor) (bool, error)
		}
		desc ocispecs.Descriptor
		want bool
	}{
		{ladeZstdChunked, plain, true},
		{ladeZstdChunked, chunked, false},
		{ladeZstd, chunked, false},
		{ladeZstd, plain, false},
	} {
		if got, err := c.typ.NeedsConversion(ctx, cs, c.desc); err != nil || got != c.want {
			t.Errorf("%v NeedsConversion(%s) = %v, %v; want %v", c.typ, c.desc.Digest, got, err, c.want)
		}
	}
	descs := []ocispecs.Descriptor{plain, chunked}
	if err := restoreZstdChunked(ctx, cs, descs); err != nil {
		t.Fatal(err)
	}
	if descs[0].Annotations != nil {
		t.Errorf("plain zstd blob got annotations %v", descs[0].Annotations)
	}
	for _, k := range blobs.ZstdChunkedAnnotationKeys {
		if descs[1].Annotations[k] == "" {
			t.Errorf("zstd:chunked blob lacks %s after restore: %v", k, descs[1].Annotations)
		}
	}
}
