package cache_test

import (
	"archive/tar"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/lade-build/lade/cache"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

var storedCases = []struct {
	mediaType string
	c         compressor
}{
	{ocispec.MediaTypeImageLayerGzip, gzipped},
	{ocispec.MediaTypeImageLayerZstd, zstded},
	{ocispec.MediaTypeImageLayer, plain},
	{"application/vnd.docker.image.rootfs.diff.tar", plain},
	{"application/vnd.docker.image.rootfs.diff.tar.gzip", gzipped},
	{"application/vnd.docker.image.rootfs.diff.tar.zstd", zstded},
}

func TestStoredMismatch(t *testing.T) {
	tarBytes := buildTar(t, []*tar.Header{{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644}}, map[string]string{"f": "data"})
	diffID := digest.FromBytes(tarBytes)
	epoch := time.Unix(1, 0)
	for _, tc := range storedCases {
		for _, ep := range []*time.Time{nil, &epoch} {
			t.Run(fmt.Sprintf("%s/epoch=%v", tc.mediaType, ep != nil), func(t *testing.T) {
				blob := compress(t, tarBytes, tc.c)
				desc := ocispec.Descriptor{MediaType: tc.mediaType, Digest: digest.FromBytes(blob), Size: int64(len(blob))}
				corrupt := append([]byte(nil), blob...)
				corrupt[len(corrupt)-1] ^= 0xff

				// The store serves other bytes than the digest names.
				_, err := readStored(t, memProvider{desc.Digest: corrupt}, desc, diffID, ep)
				want := fmt.Sprintf("blob %s: digest %s expected %s", desc.Digest, digest.FromBytes(corrupt), desc.Digest)
				checkMismatch(t, err, want)

				// The store holds a shorter blob.
				_, err = readStored(t, memProvider{desc.Digest: blob[:len(blob)-1]}, desc, diffID, ep)
				checkMismatch(t, err, fmt.Sprintf("blob %s: %d bytes in the store, expected %d", desc.Digest, len(blob)-1, len(blob)))

				// The blob is right, the diffID is not.
				wrong := digest.FromString("other")
				_, err = readStored(t, memProvider{desc.Digest: blob}, desc, wrong, ep)
				checkMismatch(t, err, fmt.Sprintf("blob %s: diffID %s expected %s", desc.Digest, diffID, wrong))

				if _, err := readStored(t, memProvider{desc.Digest: blob}, desc, diffID, ep); err != nil {
					t.Fatalf("good blob: %v", err)
				}
			})
		}
	}
}

func readStored(t *testing.T, p memProvider, desc ocispec.Descriptor, diffID digest.Digest, epoch *time.Time) ([]byte, error) {
	t.Helper()
	r, err := cache.NewStoredRef(p, cache.Blob{Descriptor: desc, DiffID: diffID}, nil, cache.StoredOptions{})
	must(t, err)
	return readDiff(t, r, cache.DiffOptions{Epoch: epoch})
}

func checkMismatch(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
	if !errors.Is(err, cache.ErrDigestMismatch) || !errors.Is(err, errdefs.ErrDataLoss) {
		t.Errorf("error %v does not match ErrDigestMismatch and ErrDataLoss", err)
	}
	// Size mismatches (their messages count bytes) match ErrSizeMismatch
	// too, digest mismatches do not.
	if size := strings.Contains(want, " bytes"); errors.Is(err, cache.ErrSizeMismatch) != size {
		t.Errorf("error %v: matches ErrSizeMismatch %v, want %v", err, !size, size)
	}
}

func TestStoredRef(t *testing.T) {
	store := newLocalStore(t)
	tarBytes := buildTar(t, []*tar.Header{{Name: "f", Typeflag: tar.TypeReg}}, nil)
	desc := storeBlob(t, store, ocispec.MediaTypeImageLayerGzip, compress(t, tarBytes, gzipped))
	blob := cache.Blob{Descriptor: desc, DiffID: digest.FromBytes(tarBytes)}
	r, err := cache.NewStoredRef(store, blob, nil, cache.StoredOptions{})
	must(t, err)
	if r.ID() != "blob:"+desc.Digest.String() || r.Parent() != nil || r.Layer().Size() != desc.Size || r.Layer() != r {
		t.Errorf("ID %q, size %d", r.ID(), r.Layer().Size())
	}
	if got, ok := r.Stored(); !ok || got.Descriptor.Digest != desc.Digest || got.DiffID != blob.DiffID {
		t.Errorf("Stored() = %v, %v", got, ok)
	}
	if r.Description() != "lade: blob "+desc.Digest.String() || !r.CreatedAt().IsZero() {
		t.Errorf("metadata %q %s", r.Description(), r.CreatedAt())
	}
	at := time.Date(2023, 5, 6, 7, 8, 9, 0, time.UTC)
	child, err := cache.NewStoredRef(store, blob, r, cache.StoredOptions{Description: "ADD rootfs /", CreatedAt: at})
	must(t, err)
	if child.Description() != "ADD rootfs /" || !child.CreatedAt().Equal(at) || child.Parent() != r {
		t.Errorf("options not kept: %q %s", child.Description(), child.CreatedAt())
	}

	missing := blob
	missing.Descriptor.Digest = digest.FromString("not stored")
	r, err = cache.NewStoredRef(store, missing, nil, cache.StoredOptions{})
	must(t, err)
	if _, err := readDiff(t, r, cache.DiffOptions{}); !errdefs.IsNotFound(err) {
		t.Errorf("missing blob: %v, want not found", err)
	}
}

func TestStoredInvalid(t *testing.T) {
	good := cache.Blob{
		Descriptor: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromString("b"), Size: 1},
		DiffID:     digest.FromString("d"),
	}
	for name, tc := range map[string]struct {
		edit func(b *cache.Blob)
		want string
	}{
		"media type": {func(b *cache.Blob) { b.Descriptor.MediaType = "application/vnd.oci.image.layer.v1.tar+bzip2" }, "unsupported layer media type"},
		"config":     {func(b *cache.Blob) { b.Descriptor.MediaType = ocispec.MediaTypeImageConfig }, "unsupported layer media type"},
		"no diffID":  {func(b *cache.Blob) { b.DiffID = "" }, "diffID"},
		"no digest":  {func(b *cache.Blob) { b.Descriptor.Digest = "" }, "digest"},
		"size":       {func(b *cache.Blob) { b.Descriptor.Size = -1 }, "negative size"},
	} {
		b := good
		tc.edit(&b)
		if _, err := cache.NewStoredRef(memProvider{}, b, nil, cache.StoredOptions{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", name, err, tc.want)
		}
	}
	if _, err := cache.NewStoredRef(nil, good, nil, cache.StoredOptions{}); err == nil {
		t.Error("nil provider accepted")
	}
}
