package cache_test

import (
	"testing"

	"github.com/lade-build/lade/cache"
	"github.com/lade-build/lade/cache/cachetest"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestConformanceDir(t *testing.T) {
	cachetest.Run(t, func(t *testing.T, fx cachetest.Fixture) cache.Ref {
		_, top := dirChain(t, fx)
		return top
	})
}

func TestConformanceTarball(t *testing.T) {
	for _, c := range []compressor{plain, gzipped, zstded} {
		t.Run(string(c), func(t *testing.T) {
			cachetest.Run(t, func(t *testing.T, fx cachetest.Fixture) cache.Ref {
				lower, upper := layerTars(t, fx)
				// No extension: the compression is told by magic bytes.
				bottom, err := cache.NewTarballRef(writeTemp(t, "lower", compress(t, lower, c)), nil,
					cache.TarballOptions{DiffID: digest.FromBytes(lower)})
				if err != nil {
					t.Fatal(err)
				}
				top, err := cache.NewTarballRef(writeTemp(t, "upper", compress(t, upper, c)), bottom,
					cache.TarballOptions{DiffID: digest.FromBytes(upper)})
				if err != nil {
					t.Fatal(err)
				}
				return top
			})
		})
	}
}

func TestConformanceStored(t *testing.T) {
	for _, tc := range []struct {
		mediaType string
		c         compressor
	}{
		{ocispec.MediaTypeImageLayerGzip, gzipped},
		{ocispec.MediaTypeImageLayerZstd, zstded},
		{ocispec.MediaTypeImageLayer, plain},
		{"application/vnd.docker.image.rootfs.diff.tar.gzip", gzipped},
	} {
		t.Run(tc.mediaType, func(t *testing.T) {
			cachetest.Run(t, func(t *testing.T, fx cachetest.Fixture) cache.Ref {
				store := newLocalStore(t)
				lower, upper := layerTars(t, fx)
				var parent cache.Ref
				for _, tar := range [][]byte{lower, upper} {
					desc := storeBlob(t, store, tc.mediaType, compress(t, tar, tc.c))
					r, err := cache.NewStoredRef(store, cache.Blob{Descriptor: desc, DiffID: digest.FromBytes(tar)},
						parent, cache.StoredOptions{})
					if err != nil {
						t.Fatal(err)
					}
					parent = r
				}
				return parent
			})
		})
	}
}
