package imagestore

import (
	"context"
	"os"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestCheckClean(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	img, err := writeImage(ctx, s.Content(), "clean")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetImage(ctx, "clean", img.Manifest); err != nil {
		t.Fatal(err)
	}
	faults, err := s.Check(ctx)
	if err != nil || len(faults) != 0 {
		t.Fatalf("Check = %v, %v; want clean", faults, err)
	}
}

func TestCheckFindsFaults(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	img, err := writeImage(ctx, s.Content(), "faulty")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetImage(ctx, "faulty", img.Manifest); err != nil {
		t.Fatal(err)
	}
	// Corrupt the layer: flip its first byte (the file is 0444).
	p := blobPath(s, img.Layer.Digest)
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if err := os.WriteFile(p, b, 0o444); err != nil {
		t.Fatal(err)
	}
	// Lose the config.
	if err := os.Remove(blobPath(s, img.Config.Digest)); err != nil {
		t.Fatal(err)
	}
	// Leave an ingest behind.
	w, err := s.Content().Writer(ctx, content.WithRef("left-behind"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("partial")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	faults, err := s.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []Fault{
		{Kind: FaultCorrupt, Digest: img.Layer.Digest},
		{Kind: FaultMissing, Digest: img.Config.Digest},
		{Kind: FaultMissing, Digest: img.Config.Digest, Name: "docker.io/library/faulty:latest"},
		{Kind: FaultCorrupt, Digest: img.Layer.Digest, Name: "docker.io/library/faulty:latest"},
		{Kind: FaultIngest, Name: "left-behind"},
	}
	if !sameFaults(faults, want) {
		t.Fatalf("Check faults:\n%s\nwant (any order, messages aside):\n%s", faultLines(faults), faultLines(want))
	}
}

func TestCheckImageMissingManifest(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	img, err := writeImage(ctx, s.Content(), "gone")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetImage(ctx, "gone", img.Manifest); err != nil {
		t.Fatal(err)
	}
	// Remove the manifest's record and file as a delete would.
	if err := s.Content().Delete(ctx, img.Manifest.Digest); err != nil {
		t.Fatal(err)
	}
	faults, err := s.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []Fault{{Kind: FaultMissing, Digest: img.Manifest.Digest, Name: "docker.io/library/gone:latest"}}
	if !sameFaults(faults, want) {
		t.Fatalf("Check faults:\n%s\nwant:\n%s", faultLines(faults), faultLines(want))
	}
}

func TestCheckUnreadableManifest(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	bad, err := putBlob(ctx, s.Content(), ocispec.MediaTypeImageManifest, []byte("not json"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetImage(ctx, "bad", bad); err != nil {
		t.Fatal(err)
	}
	faults, err := s.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []Fault{{Kind: FaultImage, Digest: bad.Digest, Name: "docker.io/library/bad:latest"}}
	if !sameFaults(faults, want) {
		t.Fatalf("Check faults:\n%s\nwant:\n%s", faultLines(faults), faultLines(want))
	}
}

// sameFaults compares faults by kind, digest and name, in any order.
func sameFaults(got, want []Fault) bool {
	type key struct {
		k FaultKind
		d digest.Digest
		n string
	}
	count := map[key]int{}
	for _, f := range got {
		count[key{f.Kind, f.Digest, f.Name}]++
	}
	for _, f := range want {
		count[key{f.Kind, f.Digest, f.Name}]--
	}
	for _, n := range count {
		if n != 0 {
			return false
		}
	}
	return true
}

func faultLines(fs []Fault) string {
	s := ""
	for _, f := range fs {
		s += "  " + f.String() + "\n"
	}
	return s
}
