//go:build cgo

package soci_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/awslabs/soci-snapshotter/ztoc"
	"github.com/awslabs/soci-snapshotter/ztoc/compression"
	"github.com/lade-build/lade/soci"
)

// The tests in this file build zTOCs of gzip blobs written by other
// compressors (Go's compress/gzip, GNU gzip, pigz) and read them with
// soci-snapshotter v0.16.1's own ztoc package (cgo, zlib), the code the
// snapshotter runs, comparing them with its own builder's.

// layerTree is a tar with text, random data, a sparse and an empty file,
// xattrs, a long name, a hardlink, a symlink, devices and whiteouts.
func layerTree(t testing.TB, seed uint64) []byte {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 11))
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h *tar.Header, data []byte) {
		h.ModTime, h.Format = time.Unix(1700000000, 0), tar.FormatPAX
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(data))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	add(&tar.Header{Name: "usr/", Typeflag: tar.TypeDir, Mode: 0o755, PAXRecords: map[string]string{"SCHILY.xattr.user.dir": "d"}}, nil)
	long := "usr/" + strings.Repeat("a-long-directory-name/", 9) + "and-a-long-file-name.txt"
	for i := range 8 {
		var text strings.Builder
		for text.Len() < 400<<10+r.IntN(800<<10) {
			fmt.Fprintf(&text, "line %d of file %d: %x\n", r.IntN(5000), i, r.Uint32()%4096)
		}
		add(&tar.Header{Name: fmt.Sprintf("usr/text%d", i), Typeflag: tar.TypeReg, Mode: 0o644, Uid: 1000, Gid: 1000, Uname: "u", Gname: "g"}, []byte(text.String()))
		noise := make([]byte, 300<<10+r.IntN(600<<10))
		for j := range noise {
			noise[j] = byte(r.Uint32())
		}
		add(&tar.Header{Name: fmt.Sprintf("usr/noise%d.bin", i), Typeflag: tar.TypeReg, Mode: 0o600}, noise)
	}
	sparse := make([]byte, 2<<20)
	copy(sparse[1<<20:], "data between zeros")
	add(&tar.Header{Name: "usr/sparse", Typeflag: tar.TypeReg, Mode: 0o644}, sparse)
	add(&tar.Header{Name: "usr/empty", Typeflag: tar.TypeReg, Mode: 0o644}, nil)
	add(&tar.Header{Name: long, Typeflag: tar.TypeReg, Mode: 0o644}, []byte("long name\n"))
	add(&tar.Header{Name: "usr/xattr", Typeflag: tar.TypeReg, Mode: 0o4755, PAXRecords: map[string]string{
		"SCHILY.xattr.security.capability": "\x01\x00\x00\x02", "SCHILY.xattr.user.k": "v"}}, []byte("#!/bin/sh\n"))
	add(&tar.Header{Name: "usr/hard", Typeflag: tar.TypeLink, Linkname: "usr/text0"}, nil)
	add(&tar.Header{Name: "usr/link", Typeflag: tar.TypeSymlink, Linkname: "../" + long}, nil)
	add(&tar.Header{Name: "usr/null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3}, nil)
	add(&tar.Header{Name: "etc/.wh.removed", Typeflag: tar.TypeReg, Mode: 0o600}, nil)
	add(&tar.Header{Name: "etc/.wh..wh..opq", Typeflag: tar.TypeReg, Mode: 0o600}, nil)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// goGzip compresses with compress/gzip; members > 1 cuts the tar into
// that many members, the first with a name, comment and extra field.
func goGzip(t testing.TB, tarball []byte, level, members int) []byte {
	t.Helper()
	var buf bytes.Buffer
	step := len(tarball)/members + 1
	for i := 0; i < len(tarball); i += step {
		zw, err := gzip.NewWriterLevel(&buf, level)
		if err != nil {
			t.Fatal(err)
		}
		if members > 1 && i == 0 {
			zw.Name, zw.Comment, zw.Extra = "layer.tar", "a comment", []byte("xx\x02\x00ab")
		}
		zw.Write(tarball[i:min(i+step, len(tarball))])
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// command compresses with an installed tool (hack/install-test-deps.sh).
func command(t testing.TB, tarball []byte, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = bytes.NewReader(tarball)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v (hack/install-test-deps.sh installs it)", name, args, err)
	}
	return out
}

// foreignBlobs are one tree compressed by other tools; sameAsZran says
// whether lade's checkpoints must be soci's builder's byte for byte.
func foreignBlobs(t *testing.T, tarball []byte) []struct {
	name       string
	blob       []byte
	sameAsZran bool
} {
	return []struct {
		name       string
		blob       []byte
		sameAsZran bool
	}{
		{"compress/gzip -1", goGzip(t, tarball, 1, 1), true},
		{"compress/gzip -6", goGzip(t, tarball, 6, 1), true},
		{"compress/gzip -9", goGzip(t, tarball, 9, 1), true},
		{"compress/gzip, 3 members with header fields", goGzip(t, tarball, 6, 3), true},
		{"gzip -6", command(t, tarball, "gzip", "-6", "-c"), true},
		{"pigz -6", command(t, tarball, "pigz", "-6", "-c"), false},
		{"pigz -6 -i", command(t, tarball, "pigz", "-6", "-i", "-c"), false},
	}
}

// TestFromGzipForeign: soci-snapshotter reads the zTOC lade builds for
// gzip it did not write: every regular file extracts to the tar's bytes
// and every span decompresses alone; the file table is its own builder's;
// the checkpoints and span digests are its builder's too where the
// compressor leaves no empty or exactly span-aligned blocks.
func TestFromGzipForeign(t *testing.T) {
	tarball := layerTree(t, 1)
	want := tarFiles(t, tarball)
	for _, c := range foreignBlobs(t, tarball) {
		for _, span := range []int64{1 << 20, soci.DefaultSpanSize} {
			name := fmt.Sprintf("%s, span %d", c.name, span)
			z, err := soci.FromGzip(bytes.NewReader(c.blob), span, 1<<20)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			ours, err := ztoc.Unmarshal(bytes.NewReader(z.Marshal()))
			if err != nil {
				t.Fatalf("%s: soci-snapshotter cannot unmarshal the zTOC: %v", name, err)
			}
			if min := int(int64(len(tarball)) / span / 2); int(ours.MaxSpanID)+1 < min {
				t.Errorf("%s: %d spans for a %d-byte tar", name, ours.MaxSpanID+1, len(tarball))
			}
			extractAll(t, name, ours, c.blob, want)
			checkSpans(t, name, ours, c.blob, tarball)
			theirs := sociBuild(t, c.blob, span)
			sameFiles(t, name, ours, theirs)
			if c.sameAsZran && !bytes.Equal(ours.Checkpoints, theirs.Checkpoints) {
				t.Errorf("%s: checkpoints differ from soci's builder's (%d and %d spans)", name, ours.MaxSpanID+1, theirs.MaxSpanID+1)
			}
			if c.sameAsZran && !slicesEqual(ours.SpanDigests, theirs.SpanDigests) {
				t.Errorf("%s: span digests differ from soci's builder's", name)
			}
		}
	}
}

// extractAll extracts every regular file through the zTOC.
func extractAll(t *testing.T, name string, z *ztoc.Ztoc, blob []byte, want map[string][]byte) {
	t.Helper()
	sr := io.NewSectionReader(bytes.NewReader(blob), 0, int64(len(blob)))
	n := 0
	for _, f := range z.FileMetadata {
		if f.Type != "reg" {
			continue
		}
		data, err := z.ExtractFile(sr, f.Name)
		if err != nil {
			t.Fatalf("%s: extract %s: %v", name, f.Name, err)
		}
		if !bytes.Equal(data, want[f.Name]) {
			t.Fatalf("%s: %s extracted as %d bytes differing from the tar's %d", name, f.Name, len(data), len(want[f.Name]))
		}
		n++
	}
	if n < 20 {
		t.Errorf("%s: only %d regular files extracted", name, n)
	}
}

// checkSpans decompresses every span on its own from its compressed bytes
// alone, as the snapshotter does after fetching one span: in, bits and
// window of each checkpoint have to be right.
func checkSpans(t *testing.T, name string, z *ztoc.Ztoc, blob, tarball []byte) {
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
			t.Fatalf("%s: span %d: %v", name, id, err)
		}
		if !bytes.Equal(data, tarball[us:ue]) {
			t.Fatalf("%s: span %d (uncompressed %d-%d) decompresses to other bytes", name, id, us, ue)
		}
	}
}

// sociBuild runs soci-snapshotter's own builder on a blob.
func sociBuild(t *testing.T, blob []byte, span int64) *ztoc.Ztoc {
	t.Helper()
	path := filepath.Join(t.TempDir(), "layer.tar.gz")
	if err := os.WriteFile(path, blob, 0o600); err != nil {
		t.Fatal(err)
	}
	z, err := ztoc.NewBuilder("test").BuildZtoc(path, span)
	if err != nil {
		t.Fatalf("soci-snapshotter's builder: %v", err)
	}
	return z
}

// sameFiles compares the sizes and file tables of two zTOCs.
func sameFiles(t *testing.T, name string, ours, theirs *ztoc.Ztoc) {
	t.Helper()
	if ours.UncompressedArchiveSize != theirs.UncompressedArchiveSize || ours.CompressedArchiveSize != theirs.CompressedArchiveSize {
		t.Errorf("%s: sizes %d/%d, soci's %d/%d", name, ours.CompressedArchiveSize, ours.UncompressedArchiveSize, theirs.CompressedArchiveSize, theirs.UncompressedArchiveSize)
	}
	if len(ours.FileMetadata) != len(theirs.FileMetadata) {
		t.Fatalf("%s: %d files, soci's builder %d", name, len(ours.FileMetadata), len(theirs.FileMetadata))
	}
	for i, o := range ours.FileMetadata {
		s := theirs.FileMetadata[i]
		o.ModTime, s.ModTime = o.ModTime.UTC(), s.ModTime.UTC()
		if len(s.PAXHeaders) == 0 {
			s.PAXHeaders = map[string]string{}
		}
		if !o.Equal(s) || !maps.Equal(o.Xattrs(), s.Xattrs()) {
			t.Errorf("%s: file %d: lade's\n%+v\nsoci's\n%+v", name, i, o, s)
		}
	}
}

func slicesEqual[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
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

// BenchmarkForeignGzipSociBuilder is soci-snapshotter's own builder
// (zlib's zran for the checkpoints, compress/gzip for the file table) on
// BenchmarkForeignGzip's layer, the blob in a file as its IndexBuilder
// has it.
func BenchmarkForeignGzipSociBuilder(b *testing.B) {
	tarball, blob := goSourceLayer(b)
	path := filepath.Join(b.TempDir(), "layer.tar.gz")
	if err := os.WriteFile(path, blob, 0o600); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(tarball)))
	for b.Loop() {
		if _, err := ztoc.NewBuilder("test").BuildZtoc(path, soci.DefaultSpanSize); err != nil {
			b.Fatal(err)
		}
	}
}
