package buildkit

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/lade-build/lade/cache"
	"github.com/lade-build/lade/exporter/oci"
	bkcompression "github.com/moby/buildkit/util/compression"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// putBlob writes data into cs and returns its descriptor.
func putBlob(t *testing.T, cs content.Store, mt string, data []byte) ocispecs.Descriptor {
	t.Helper()
	d := ocispecs.Descriptor{MediaType: mt, Digest: digest.FromBytes(data), Size: int64(len(data))}
	if err := content.WriteBlob(context.Background(), cs, d.Digest.String(), bytes.NewReader(data), d); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestTarStream streams two layers early (and skips an empty one), then
// completes the layout: every blob once, the early layer before the
// config, and a tar that lade's OCI reader imports.
func TestTarStream(t *testing.T) {
	ctx := context.Background()
	cs, err := local.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	l1 := putBlob(t, cs, ocispecs.MediaTypeImageLayerGzip, bytes.Repeat([]byte("one"), 4000))
	l2data := bytes.Repeat([]byte("two"), 4000)
	l2 := putBlob(t, cs, ocispecs.MediaTypeImageLayerGzip, l2data)
	empty := putBlob(t, cs, ocispecs.MediaTypeImageLayerGzip, []byte("empty tar, gzipped"))
	cfg := putBlob(t, cs, ocispecs.MediaTypeImageConfig, []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`))
	mb, _ := json.Marshal(ocispecs.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispecs.MediaTypeImageManifest,
		Config: cfg, Layers: []ocispecs.Descriptor{l1, l2}})
	m := putBlob(t, cs, ocispecs.MediaTypeImageManifest, mb)

	var buf bytes.Buffer
	s, err := newTarStream(ctx, cs, &buf, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var reported error = errors.New("not reported")
	s.out, s.report = nopWriteCloser{&buf}, func(err error) error { reported = err; return err }
	s.add(l2, 1<<20, crc32c(l2data))
	s.add(empty, emptyTarSize, 0)
	s.add(l2, 1<<20, crc32c(l2data)) // sealed twice: written once
	if err := s.complete(ctx, cs, m, []string{"x:1"}, time.Unix(1700000000, 0)); err != nil || reported != nil {
		t.Fatalf("complete: %v, reported %v", err, reported)
	}
	s.add(l1, 1<<20, 0)               // after complete: ignored
	s.abort(errors.New("late abort")) // after complete: no effect
	if reported != nil {
		t.Fatalf("abort after complete reported %v", reported)
	}

	var names []string
	tr := tar.NewReader(bytes.NewReader(buf.Bytes()))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
	pos := map[string]int{}
	for n, name := range names {
		if _, dup := pos[name]; dup {
			t.Fatalf("%s written twice: %v", name, names)
		}
		pos[name] = n
	}
	blob := func(d ocispecs.Descriptor) string { return "blobs/sha256/" + d.Digest.Encoded() }
	if _, ok := pos[blob(empty)]; ok {
		t.Errorf("empty layer streamed: %v", names)
	}
	for _, d := range []ocispecs.Descriptor{l1, l2, cfg, m} {
		if _, ok := pos[blob(d)]; !ok {
			t.Errorf("%s missing: %v", d.Digest, names)
		}
	}
	if pos[blob(l2)] > pos[blob(cfg)] || names[len(names)-1] != "index.json" || names[0] != "oci-layout" {
		t.Errorf("order %v", names)
	}
	path := filepath.Join(t.TempDir(), "x.tar")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	back, err := local.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	got, err := oci.ReadTar(ctx, path, "x:1", back)
	if err != nil || got.Digest != m.Digest {
		t.Fatalf("read back: %v %v", got.Digest, err)
	}
}

// crc32c is the CRC-32C of b.
func crc32c(b []byte) uint32 {
	return crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))
}

// TestTarStreamSealedCRC: a sealed blob whose bytes in the store do not
// have the CRC its compressor took fails the stream, as a digest mismatch;
// the same blob not sealed (hashed in full) passes.
func TestTarStreamSealedCRC(t *testing.T) {
	ctx := context.Background()
	cs, err := local.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("layer"), 3000)
	l := putBlob(t, cs, ocispecs.MediaTypeImageLayerGzip, data)
	cfg := putBlob(t, cs, ocispecs.MediaTypeImageConfig, []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`))
	mb, _ := json.Marshal(ocispecs.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispecs.MediaTypeImageManifest,
		Config: cfg, Layers: []ocispecs.Descriptor{l}})
	m := putBlob(t, cs, ocispecs.MediaTypeImageManifest, mb)
	for _, c := range []struct {
		name string
		seal bool
		crc  uint32
		want error
	}{
		{"sealed, right CRC", true, crc32c(data), nil},
		{"sealed, wrong CRC", true, crc32c(data) ^ 1, cache.ErrDigestMismatch},
		{"not sealed", false, 0, nil},
	} {
		var buf bytes.Buffer
		s, err := newTarStream(ctx, cs, &buf, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		s.out, s.report = nopWriteCloser{&buf}, func(err error) error { return err }
		if c.seal {
			s.add(l, 1<<20, c.crc)
		}
		err = s.complete(ctx, cs, m, []string{"x:1"}, time.Unix(1700000000, 0))
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

// TestSealedBlobReachesSink: with a streaming export, the finalizer BuildKit
// calls after committing the blob hands it to the tracker's sink.
func TestSealedBlobReachesSink(t *testing.T) {
	tr := &tracker{}
	var got ocispecs.Descriptor
	var gotSize int64
	var gotCRC uint32
	tr.setSink(func(d ocispecs.Descriptor, n int64, crc uint32) { got, gotSize, gotCRC = d, n, crc })
	ctx := withTracker(context.Background(), tr)
	fn, fin := ladeGzip.Compress(ctx, bkcompression.Config{Type: ladeGzip})
	if fin == nil {
		t.Fatal("no finalizer for a streaming export")
	}
	var out bytes.Buffer
	w, err := fn(&out, ladeGzip.MediaType())
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("x"), 5000)
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := fin(ctx, nil); err != nil {
		t.Fatal(err)
	}
	want := ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageLayerGzip, Digest: digest.FromBytes(out.Bytes()), Size: int64(out.Len())}
	if got.Digest != want.Digest || got.Size != want.Size || got.MediaType != want.MediaType || gotSize != int64(len(data)) {
		t.Fatalf("sink got %+v (%d bytes), want %+v (%d)", got, gotSize, want, len(data))
	}
	if gotCRC != crc32c(out.Bytes()) {
		t.Errorf("sink got CRC %08x, want the blob's %08x", gotCRC, crc32c(out.Bytes()))
	}
}
