package imagestore

import (
	"context"
	"testing"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestNormalizeName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"foo", "docker.io/library/foo:latest"},
		{"foo:1", "docker.io/library/foo:1"},
		{"user/foo", "docker.io/user/foo:latest"},
		{"docker.io/library/foo:latest", "docker.io/library/foo:latest"},
		{"localhost:5000/a/b:v2", "localhost:5000/a/b:v2"},
		{"example.com/foo@sha256:" + sixtyFourA, "example.com/foo@sha256:" + sixtyFourA},
	} {
		got, err := NormalizeName(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("NormalizeName(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "Foo", "foo:bad tag", "a//b", "foo@sha256:short", ":latest"} {
		if _, err := NormalizeName(bad); !errdefs.IsInvalidArgument(err) {
			t.Errorf("NormalizeName(%q): %v, want invalid argument", bad, err)
		}
	}
}

const sixtyFourA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

func TestImages(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	a, err := writeImage(ctx, s.Content(), "a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := writeImage(ctx, s.Content(), "b")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetImage(ctx, "foo", a.Manifest); err != nil {
		t.Fatal(err)
	}
	if err := s.SetImage(ctx, "example.com/bar:1", b.Manifest); err != nil {
		t.Fatal(err)
	}
	img, err := s.GetImage(ctx, "docker.io/library/foo:latest")
	if err != nil {
		t.Fatal(err)
	}
	if img.Name != "docker.io/library/foo:latest" || img.Target.Digest != a.Manifest.Digest || img.CreatedAt.IsZero() {
		t.Fatalf("GetImage = %+v", img)
	}
	// Update in place: same name, new target.
	if err := s.SetImage(ctx, "foo:latest", b.Manifest); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListImages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "docker.io/library/foo:latest" || list[1].Name != "example.com/bar:1" {
		t.Fatalf("ListImages = %+v", list)
	}
	if list[0].Target.Digest != b.Manifest.Digest || !list[0].CreatedAt.Equal(img.CreatedAt) {
		t.Fatalf("updated image = %+v, want target %s and creation kept", list[0], b.Manifest.Digest)
	}
	if err := s.DeleteImage(ctx, "foo"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteImage(ctx, "foo"); !errdefs.IsNotFound(err) {
		t.Fatalf("second DeleteImage: %v, want not found", err)
	}
	if _, err := s.GetImage(ctx, "foo"); !errdefs.IsNotFound(err) {
		t.Fatalf("GetImage after delete: %v, want not found", err)
	}
}

func TestImageBadInput(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	a, err := writeImage(ctx, s.Content(), "a")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetImage(ctx, "Bad Name", a.Manifest); !errdefs.IsInvalidArgument(err) {
		t.Errorf("SetImage bad name: %v", err)
	}
	if _, err := s.GetImage(ctx, "UPPER"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("GetImage bad name: %v", err)
	}
	if err := s.DeleteImage(ctx, ""); !errdefs.IsInvalidArgument(err) {
		t.Errorf("DeleteImage bad name: %v", err)
	}
	missing := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest,
		Digest: "sha256:" + sixtyFourA, Size: 10}
	if err := s.SetImage(ctx, "foo", missing); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("SetImage missing target: %v, want failed precondition", err)
	}
	if err := s.SetImage(ctx, "foo", ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Size: 1}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("SetImage without digest: %v, want invalid argument", err)
	}
	wrongSize := a.Manifest
	wrongSize.Size++
	if err := s.SetImage(ctx, "foo", wrongSize); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("SetImage wrong size: %v, want failed precondition", err)
	}
	noType := a.Manifest
	noType.MediaType = ""
	if err := s.SetImage(ctx, "foo", noType); !errdefs.IsInvalidArgument(err) {
		t.Errorf("SetImage without media type: %v, want invalid argument", err)
	}
	if list, err := s.ListImages(ctx); err != nil || len(list) != 0 {
		t.Fatalf("ListImages after refusals = %v, %v", list, err)
	}
}
