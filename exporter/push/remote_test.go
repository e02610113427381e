package push

import (
	"bytes"
	"context"
	"errors"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// breakingFetcher serves data, cutting the first `breaks` streams after
// cut bytes with a connection reset.
type breakingFetcher struct {
	data    []byte
	cut     int
	breaks  int
	fetches int
}

func (f *breakingFetcher) Fetch(context.Context, ocispec.Descriptor) (io.ReadCloser, error) {
	f.fetches++
	if f.fetches <= f.breaks {
		return io.NopCloser(io.MultiReader(bytes.NewReader(f.data[:f.cut]), errReader{syscall.ECONNRESET})), nil
	}
	return io.NopCloser(bytes.NewReader(f.data)), nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func testRemote(t *testing.T, f *breakingFetcher) *Remote {
	t.Helper()
	named, err := reference.ParseNormalizedNamed("127.0.0.1:5000/x:1")
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{RetryDelay: time.Millisecond, MaxAttempts: 3}.withDefaults()
	return &Remote{s: &session{opts: opts, creds: newCredentials(t.TempDir())}, fetcher: f, name: named, source: sourceLabel(named)}
}

// TestRemoteReaderResumes reads a blob whose stream breaks twice: the
// reader fetches again from where it stopped and returns the whole blob.
func TestRemoteReaderResumes(t *testing.T) {
	data := randomBytes(t, 100_000)
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(data), Size: int64(len(data))}
	f := &breakingFetcher{data: data, cut: 30_000, breaks: 2}
	r := testRemote(t, f)
	ra, err := r.ReaderAt(context.Background(), desc)
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	got, err := io.ReadAll(io.NewSectionReader(ra, 0, ra.Size()))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes (%v), want the %d-byte blob", len(got), err, len(data))
	}
	if f.fetches != 3 {
		t.Errorf("%d fetches, want 3 (two broken streams, one whole)", f.fetches)
	}
	// A read elsewhere fetches again and skips to the offset.
	buf := make([]byte, 10)
	if n, err := ra.ReadAt(buf, 500); n != 10 || err != nil || !bytes.Equal(buf, data[500:510]) {
		t.Fatalf("ReadAt(500): %d, %v", n, err)
	}
	if n, err := ra.ReadAt(buf, int64(len(data))-4); n != 4 || !errors.Is(err, io.EOF) {
		t.Fatalf("ReadAt at the end: %d, %v; want 4, EOF", n, err)
	}
	info, err := r.Info(context.Background(), desc.Digest)
	if err != nil || info.Labels["containerd.io/distribution.source.127.0.0.1"] != "x" {
		t.Errorf("Info labels: %v, %v", info.Labels, err)
	}
}

// TestRemoteReaderGivesUp stops after MaxAttempts broken streams.
func TestRemoteReaderGivesUp(t *testing.T) {
	data := randomBytes(t, 1000)
	desc := ocispec.Descriptor{Digest: digest.FromBytes(data), Size: int64(len(data))}
	f := &breakingFetcher{data: data, cut: 10, breaks: 100}
	ra, _ := testRemote(t, f).ReaderAt(context.Background(), desc)
	if _, err := io.ReadAll(io.NewSectionReader(ra, 0, ra.Size())); !errors.Is(err, syscall.ECONNRESET) || f.fetches != 3 {
		t.Fatalf("err %v after %d fetches; want ECONNRESET after 3", err, f.fetches)
	}
}
