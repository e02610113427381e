package cache_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/errdefs"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/lade-build/lade/cache"
	"github.com/lade-build/lade/cache/cachetest"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// dirChain returns the directory refs of fx's two layers.
func dirChain(t testing.TB, fx cachetest.Fixture) (bottom, top *cache.DirRef) {
	t.Helper()
	bottom, err := cache.NewDirRef(fx.Lower, nil, cache.DirOptions{})
	if err != nil {
		t.Fatal(err)
	}
	top, err = cache.NewDirRef(fx.Upper, bottom, cache.DirOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return bottom, top
}

// layerTars returns the uncompressed tars of fx's two layers, from the
// directory source.
func layerTars(t testing.TB, fx cachetest.Fixture) (lower, upper []byte) {
	t.Helper()
	bottom, top := dirChain(t, fx)
	return cachetest.ReadDiff(t, bottom, cache.DiffOptions{}), cachetest.ReadDiff(t, top, cache.DiffOptions{})
}

// compressor names a compression for fixtures.
type compressor string

const (
	plain   compressor = "plain"
	gzipped compressor = "gzip"
	zstded  compressor = "zstd"
)

// compress compresses b with c.
func compress(t testing.TB, b []byte, c compressor) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	switch c {
	case plain:
		return b
	case gzipped:
		w = gzip.NewWriter(&buf)
	case zstded:
		zw, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		w = zw
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// writeTemp writes b to a new file in t.TempDir().
func writeTemp(t testing.TB, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// newLocalStore returns containerd's local content store in t.TempDir().
func newLocalStore(t testing.TB) content.Store {
	t.Helper()
	s, err := local.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// storeBlob writes blob to s and returns its descriptor.
func storeBlob(t testing.TB, s content.Ingester, mediaType string, blob []byte) ocispec.Descriptor {
	t.Helper()
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(blob), Size: int64(len(blob))}
	if err := content.WriteBlob(context.Background(), s, desc.Digest.String(), bytes.NewReader(blob), desc); err != nil {
		t.Fatal(err)
	}
	return desc
}

// memProvider is an in-memory content.Provider that serves any bytes under
// any digest, to fake corrupt stores.
type memProvider map[digest.Digest][]byte

func (m memProvider) ReaderAt(_ context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	b, ok := m[desc.Digest]
	if !ok {
		return nil, errdefs.ErrNotFound
	}
	return memReaderAt{bytes.NewReader(b)}, nil
}

type memReaderAt struct{ *bytes.Reader }

func (memReaderAt) Close() error { return nil }

// readDiff reads r's diff and returns the bytes and the read error.
func readDiff(t testing.TB, r cache.Ref, opts cache.DiffOptions) ([]byte, error) {
	t.Helper()
	rc, err := r.Layer().Diff(context.Background(), opts)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}
