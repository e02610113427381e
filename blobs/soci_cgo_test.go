//go:build cgo

package blobs

import (
	"archive/tar"
	"bytes"
	stdgzip "compress/gzip"
	"errors"
	"io"
	"maps"
	"os"
	"path/filepath"
	"testing"

	"github.com/awslabs/soci-snapshotter/ztoc"
	"github.com/awslabs/soci-snapshotter/ztoc/compression"
	"github.com/lade-build/lade/blobs/internal/pargzip"
	"github.com/lade-build/lade/soci"
)

// The tests in this file read lade's zTOCs with soci-snapshotter's own
// ztoc package (cgo and zlib: hack/install-test-deps.sh installs
// zlib1g-dev), the code the snapshotter runs.

// TestSociZtocReadBySnapshotter: soci-snapshotter unmarshals each zTOC and
// extracts every regular file from the gzip blob through its checkpoints,
// byte for byte the tar's, for span sizes from one block to more than the
// layer.
func TestSociZtocReadBySnapshotter(t *testing.T) {
	tarball := sociTree(t, 3)
	want := tarFiles(t, tarball)
	for _, span := range []int64{1 << 20, 4 << 20, 1 << 30} {
		got := compressSoci(t, nil, tarball, Soci{SpanSize: span, MinLayerSize: -1}, 1<<20)
		z, err := ztoc.Unmarshal(bytes.NewReader(got.ztoc))
		if err != nil {
			t.Fatalf("span %d: soci-snapshotter cannot unmarshal the zTOC: %v", span, err)
		}
		if z.CompressionAlgorithm != "gzip" || int64(z.CompressedArchiveSize) != int64(len(got.blob)) {
			t.Errorf("span %d: algorithm %q, compressed size %d; want gzip, %d", span, z.CompressionAlgorithm, z.CompressedArchiveSize, len(got.blob))
		}
		if len(z.FileMetadata) != len(want) {
			t.Fatalf("span %d: %d files in the zTOC, %d in the tar", span, len(z.FileMetadata), len(want))
		}
		sr := io.NewSectionReader(bytes.NewReader(got.blob), 0, int64(len(got.blob)))
		extracted := 0
		for _, f := range z.FileMetadata {
			content, ok := want[f.Name]
			if !ok {
				t.Errorf("span %d: zTOC names %q, which the tar does not have", span, f.Name)
				continue
			}
			if f.Type != "reg" {
				continue
			}
			data, err := z.ExtractFile(sr, f.Name)
			if err != nil {
				t.Fatalf("span %d: extract %s: %v", span, f.Name, err)
			}
			if !bytes.Equal(data, content) {
				t.Fatalf("span %d: %s extracted as %d bytes differing from the tar's %d", span, f.Name, len(data), len(content))
			}
			extracted++
		}
		if extracted < 15 {
			t.Errorf("span %d: only %d regular files extracted", span, extracted)
		}
		checkSpans(t, z, got.blob, tarball)
	}
}

// checkSpans decompresses every span on its own, from its compressed
// bytes alone, as the snapshotter does when it fetches one span: each
// checkpoint's window has to be right.
func checkSpans(t *testing.T, z *ztoc.Ztoc, blob, tarball []byte) {
	t.Helper()
	zinfo, err := z.Zinfo()
	if err != nil {
		t.Fatal(err)
	}
	defer zinfo.Close()
	for id := compression.SpanID(0); id <= zinfo.MaxSpanID(); id++ {
		cs, ce := zinfo.StartCompressedOffset(id), zinfo.EndCompressedOffset(id, compression.Offset(len(blob)))
		us, ue := zinfo.StartUncompressedOffset(id), zinfo.EndUncompressedOffset(id, z.UncompressedArchiveSize)
		data, err := zinfo.ExtractDataFromBuffer(blob[cs:ce], ue-us, us, id)
		if err != nil {
			t.Fatalf("span %d: %v", id, err)
		}
		if !bytes.Equal(data, tarball[us:ue]) {
			t.Fatalf("span %d (uncompressed %d-%d) decompresses to other bytes", id, us, ue)
		}
	}
}

// TestSociZtocMatchesSociBuilder: lade's file table and sizes are those
// soci-snapshotter's own builder (the one its IndexBuilder runs per layer,
// decompressing the blob) makes for the same blob.
func TestSociZtocMatchesSociBuilder(t *testing.T) {
	tarball := sociTree(t, 2)
	got := compressSoci(t, nil, tarball, Soci{MinLayerSize: -1}, 1<<20)
	path := filepath.Join(t.TempDir(), "layer.tar.gz")
	if err := os.WriteFile(path, got.blob, 0o600); err != nil {
		t.Fatal(err)
	}
	theirs, err := ztoc.NewBuilder("test").BuildZtoc(path, 4<<20)
	if err != nil {
		t.Fatalf("soci-snapshotter's builder: %v", err)
	}
	ours, err := ztoc.Unmarshal(bytes.NewReader(got.ztoc))
	if err != nil {
		t.Fatal(err)
	}
	if ours.UncompressedArchiveSize != theirs.UncompressedArchiveSize || ours.CompressedArchiveSize != theirs.CompressedArchiveSize {
		t.Errorf("sizes %d/%d, soci's %d/%d", ours.CompressedArchiveSize, ours.UncompressedArchiveSize, theirs.CompressedArchiveSize, theirs.UncompressedArchiveSize)
	}
	if len(ours.FileMetadata) != len(theirs.FileMetadata) {
		t.Fatalf("%d files, soci's builder %d", len(ours.FileMetadata), len(theirs.FileMetadata))
	}
	for i, o := range ours.FileMetadata {
		s := theirs.FileMetadata[i]
		o.ModTime, s.ModTime = o.ModTime.UTC(), s.ModTime.UTC()
		if len(s.PAXHeaders) == 0 {
			s.PAXHeaders = map[string]string{}
		}
		if !o.Equal(s) || !maps.Equal(o.Xattrs(), s.Xattrs()) {
			t.Errorf("file %d: lade's\n%+v\nsoci's\n%+v", i, o, s)
		}
	}
}

// tarFiles maps each entry name of a tar to its content.
func tarFiles(t testing.TB, tarball []byte) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(tarball))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = data
	}
}

// TestSociZtocOfMemberBlob: a blob whose 1 MiB blocks are gzip members of
// their own (lade's libdeflate codec) gets a zTOC from one read, which
// soci-snapshotter reads, extracting every file and every span alone.
func TestSociZtocOfMemberBlob(t *testing.T) {
	tarball := sociTree(t, 2)
	blob := memberGzip(t, tarball)
	z, err := soci.FromGzip(bytes.NewReader(blob), 2<<20, pargzip.BlockSize)
	if err != nil {
		t.Fatal(err)
	}
	toc, err := ztoc.Unmarshal(bytes.NewReader(z.Marshal()))
	if err != nil {
		t.Fatal(err)
	}
	if toc.MaxSpanID < 3 {
		t.Errorf("%d spans at a 2 MiB span size over %d bytes", toc.MaxSpanID+1, len(tarball))
	}
	want := tarFiles(t, tarball)
	sr := io.NewSectionReader(bytes.NewReader(blob), 0, int64(len(blob)))
	for _, f := range toc.FileMetadata {
		if f.Type != "reg" {
			continue
		}
		data, err := toc.ExtractFile(sr, f.Name)
		if err != nil || !bytes.Equal(data, want[f.Name]) {
			t.Fatalf("extract %s: %v (%d bytes, want %d)", f.Name, err, len(data), len(want[f.Name]))
		}
	}
	checkSpans(t, toc, blob, tarball)
}

// memberGzip compresses each 1 MiB block of data as a gzip member of its
// own, as lade's libdeflate codec does.
func memberGzip(t testing.TB, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	for len(data) > 0 {
		n := min(len(data), pargzip.BlockSize)
		zw, _ := stdgzip.NewWriterLevel(&buf, 6)
		zw.Write(data[:n])
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		data = data[n:]
	}
	return buf.Bytes()
}
