package blobs

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	fbs "github.com/awslabs/soci-snapshotter/ztoc/fbs/ztoc"
	"github.com/lade-build/lade/blobs/internal/pargzip"
	"github.com/lade-build/lade/soci"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// sociTree returns a tar with what a zTOC has to describe: directories,
// text and incompressible files, empty and mostly-zero (sparse on disk)
// files, hardlinks, symlinks, a fifo, a char device, xattrs, names over
// 100 bytes, whiteouts and an opaque-directory marker.
func sociTree(t testing.TB, scale int) []byte {
	t.Helper()
	r := rand.New(rand.NewPCG(uint64(scale), 7))
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(1700000000, 0)
	add := func(h *tar.Header, data []byte) {
		h.ModTime, h.Format = mtime, tar.FormatPAX
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
	add(&tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755}, nil)
	add(&tar.Header{Name: "usr/", Typeflag: tar.TypeDir, Mode: 0o755, PAXRecords: map[string]string{"SCHILY.xattr.user.dir": "d"}}, nil)
	long := "usr/" + strings.Repeat("long-directory-name/", 8) + "file-with-a-long-name.txt"
	for i := range 6 * scale {
		text := []byte(strings.Repeat(fmt.Sprintf("line %d of file %d\n", r.IntN(1000), i), 20000+r.IntN(40000)))
		add(&tar.Header{Name: fmt.Sprintf("usr/text%d", i), Typeflag: tar.TypeReg, Mode: 0o644, Uid: 1000, Gid: 1000, Uname: "u", Gname: "g"}, text)
		noise := make([]byte, 700<<10+r.IntN(900<<10))
		for j := range noise {
			noise[j] = byte(r.Uint32())
		}
		add(&tar.Header{Name: fmt.Sprintf("usr/noise%d.bin", i), Typeflag: tar.TypeReg, Mode: 0o600}, noise)
	}
	sparse := make([]byte, 3<<20)
	copy(sparse[2<<20:], "data in the middle of zeros")
	add(&tar.Header{Name: "usr/sparse", Typeflag: tar.TypeReg, Mode: 0o644}, sparse)
	add(&tar.Header{Name: "usr/empty", Typeflag: tar.TypeReg, Mode: 0o644}, nil)
	add(&tar.Header{Name: long, Typeflag: tar.TypeReg, Mode: 0o644}, []byte("long name\n"))
	add(&tar.Header{Name: "usr/xattr", Typeflag: tar.TypeReg, Mode: 0o4755, PAXRecords: map[string]string{
		"SCHILY.xattr.security.capability": "\x01\x00\x00\x02", "SCHILY.xattr.user.k": "v"}}, []byte("#!/bin/sh\n"))
	add(&tar.Header{Name: "usr/hard", Typeflag: tar.TypeLink, Linkname: "usr/text0"}, nil)
	add(&tar.Header{Name: "usr/link", Typeflag: tar.TypeSymlink, Linkname: "../" + long}, nil)
	add(&tar.Header{Name: "usr/fifo", Typeflag: tar.TypeFifo, Mode: 0o600}, nil)
	add(&tar.Header{Name: "usr/null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3}, nil)
	add(&tar.Header{Name: "etc/.wh.removed", Typeflag: tar.TypeReg, Mode: 0o600}, nil)
	add(&tar.Header{Name: "etc/.wh..wh..opq", Typeflag: tar.TypeReg, Mode: 0o600}, nil)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// sociBlob is one layer compressed with a zTOC.
type sociBlob struct {
	blob, ztoc  []byte
	annotations map[string]string
}

// compressSoci compresses tarball as write does, in chunks of chunk bytes,
// on pool p (nil: the default pool) and returns the blob and its zTOC.
func compressSoci(t testing.TB, p *pargzip.Pool, tarball []byte, cfg Soci, chunk int) sociBlob {
	t.Helper()
	var mu sync.Mutex
	var out sociBlob
	cfg.Put = func(desc ocispec.Descriptor, data []byte) error {
		mu.Lock()
		defer mu.Unlock()
		if desc.Digest != digest.FromBytes(data) || desc.Size != int64(len(data)) {
			return fmt.Errorf("descriptor %v does not match the data", desc)
		}
		out.ztoc = append([]byte(nil), data...)
		return nil
	}
	if p == nil {
		p = pargzip.Default()
	}
	var buf bytes.Buffer
	zw, err := newSociWriterOn(p, &buf, 6, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for q := tarball; len(q) > 0; {
		n := min(chunk, len(q))
		if _, err := zw.Write(q[:n]); err != nil {
			t.Fatal(err)
		}
		q = q[n:]
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	out.blob, out.annotations = buf.Bytes(), zw.Annotations()
	return out
}

// zinfoPoint is one decoded checkpoint.
type zinfoPoint struct{ in, out int64 }

// decodeZinfo reads the zinfo blob's header and checkpoints.
func decodeZinfo(t testing.TB, b []byte) (span int64, pts []zinfoPoint) {
	t.Helper()
	const per = 8 + 8 + 1 + pargzip.WindowSize
	n := int(binary.LittleEndian.Uint32(b))
	if len(b) != 12+n*per {
		t.Fatalf("zinfo of %d bytes for %d checkpoints", len(b), n)
	}
	for i := range n {
		c := b[12+i*per:]
		pts = append(pts, zinfoPoint{int64(binary.LittleEndian.Uint64(c)), int64(binary.LittleEndian.Uint64(c[8:]))})
		if c[16] != 0 {
			t.Errorf("checkpoint %d has bit offset %d, want 0", i, c[16])
		}
	}
	return int64(binary.LittleEndian.Uint64(b[4:])), pts
}

// TestSociSameBytesAnyCores: the blob is plain gzip's and blob and zTOC
// are the same for any number of workers, pool slots and write sizes.
func TestSociSameBytesAnyCores(t *testing.T) {
	tarball := sociTree(t, 2)
	cfg := Soci{SpanSize: 2 << 20, MinLayerSize: -1}
	var plain bytes.Buffer
	zw, err := pargzip.NewPool(1, 2).NewWriter(&plain, 6)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(tarball)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	var first sociBlob
	for i, c := range []struct{ workers, slots, chunk int }{{1, 2, 1 << 20}, {4, 10, 7777}, {2, 3, 3 << 20}} {
		got := compressSoci(t, pargzip.NewPool(c.workers, c.slots), tarball, cfg, c.chunk)
		if !bytes.Equal(got.blob, plain.Bytes()) {
			t.Fatalf("run %d: soci blob differs from plain gzip's", i)
		}
		if i == 0 {
			first = got
			continue
		}
		if !bytes.Equal(got.ztoc, first.ztoc) {
			t.Errorf("run %d (%d workers, %d-byte writes): zTOC differs", i, c.workers, c.chunk)
		}
	}
	if first.annotations[AnnotationZtoc] != digest.FromBytes(first.ztoc).String() {
		t.Errorf("annotations %v do not name the zTOC", first.annotations)
	}
}

// TestSociSpans: checkpoints start at block starts at least a span apart,
// and the span digests are the sha256 of the compressed ranges between.
func TestSociSpans(t *testing.T) {
	tarball := sociTree(t, 2)
	span := int64(3 << 20)
	got := compressSoci(t, nil, tarball, Soci{SpanSize: span, MinLayerSize: -1}, 1<<20)
	z := parseZtocForTest(t, got.ztoc)
	size, pts := decodeZinfo(t, z.checkpoints)
	if size != span || len(pts) < 3 {
		t.Fatalf("span size %d, %d checkpoints; want %d and at least 3", size, len(pts), span)
	}
	if pts[0] != (zinfoPoint{10, 0}) {
		t.Errorf("first checkpoint %v, want {10 0}", pts[0])
	}
	for i := 1; i < len(pts); i++ {
		if pts[i].out%pargzip.BlockSize != 0 || pts[i].out-pts[i-1].out < span {
			t.Errorf("checkpoint %d at uncompressed %d: not a block start a span past %d", i, pts[i].out, pts[i-1].out)
		}
	}
	if len(z.spanDigests) != len(pts) {
		t.Fatalf("%d span digests for %d checkpoints", len(z.spanDigests), len(pts))
	}
	for i, p := range pts {
		end := int64(len(got.blob))
		if i+1 < len(pts) {
			end = pts[i+1].in
		}
		sum := sha256.Sum256(got.blob[p.in:end])
		if want := digest.NewDigestFromBytes(digest.SHA256, sum[:]).String(); z.spanDigests[i] != want {
			t.Errorf("span %d digest %s, want %s", i, z.spanDigests[i], want)
		}
	}
}

// TestSociMinLayerSize: a blob under the minimum gets no zTOC.
func TestSociMinLayerSize(t *testing.T) {
	tarball := sociTree(t, 1)
	got := compressSoci(t, nil, tarball, Soci{MinLayerSize: 1 << 40}, 1<<20)
	if got.ztoc != nil || got.annotations != nil {
		t.Errorf("a small layer got a zTOC (%d bytes, annotations %v)", len(got.ztoc), got.annotations)
	}
}

// TestSociExactBlockMultiple: a tar ending on a block boundary (an empty
// final block) gets no empty last span.
func TestSociExactBlockMultiple(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	data := make([]byte, 2*pargzip.BlockSize-3*512)
	tw.WriteHeader(&tar.Header{Name: "f", Typeflag: tar.TypeReg, Size: int64(len(data)), Mode: 0o644})
	tw.Write(data)
	tw.Close()
	if buf.Len() != 2*pargzip.BlockSize {
		t.Fatalf("tar of %d bytes, want %d", buf.Len(), 2*pargzip.BlockSize)
	}
	got := compressSoci(t, nil, buf.Bytes(), Soci{SpanSize: 1 << 20, MinLayerSize: -1}, 1<<20)
	_, pts := decodeZinfo(t, parseZtocForTest(t, got.ztoc).checkpoints)
	if len(pts) != 2 || pts[1].out != pargzip.BlockSize {
		t.Errorf("checkpoints %v, want the start and one at %d", pts, pargzip.BlockSize)
	}
}

// TestSociBadTar: a stream that is not a whole tar fails Close.
func TestSociBadTar(t *testing.T) {
	zw, err := newSociWriterOn(pargzip.Default(), io.Discard, 6, Soci{Put: func(ocispec.Descriptor, []byte) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(bytes.Repeat([]byte("x"), 700))
	if err := zw.Close(); err == nil || !strings.Contains(err.Error(), "soci") {
		t.Errorf("Close of a non-tar = %v, want a soci error", err)
	}
}

// parsedZtoc is what the pure-Go tests read back from a zTOC.
type parsedZtoc struct {
	checkpoints []byte
	spanDigests []string
	files       int
}

// parseZtocForTest reads a zTOC with soci-snapshotter's generated
// flatbuffers code.
func parseZtocForTest(t testing.TB, b []byte) parsedZtoc {
	t.Helper()
	z := fbs.GetRootAsZtoc(b, 0)
	info := z.CompressionInfo(nil)
	if info == nil || string(z.Version()) != "0.9" {
		t.Fatalf("zTOC without compression info or of version %q", z.Version())
	}
	out := parsedZtoc{checkpoints: info.CheckpointsBytes(), files: z.Toc(nil).MetadataLength()}
	for i := range info.SpanDigestsLength() {
		out.spanDigests = append(out.spanDigests, string(info.SpanDigests(i)))
	}
	if int(info.MaxSpanId())+1 != len(out.spanDigests) {
		t.Errorf("max span id %d for %d span digests", info.MaxSpanId(), len(out.spanDigests))
	}
	return out
}

// TestSociFromBlob: the zTOC built by reading a stored blob once (lade
// gzip made elsewhere: a base layer, BuildKit's pipeline) is byte for byte
// the one built while compressing; gzip not cut into lade's blocks gets
// one too (checkpoints at any block start).
func TestSociFromBlob(t *testing.T) {
	tarball := sociTree(t, 2)
	for _, span := range []int64{512 << 10, 1 << 20, 3 << 20} {
		got := compressSoci(t, nil, tarball, Soci{SpanSize: span, MinLayerSize: -1}, 1<<20)
		z, err := soci.FromGzip(bytes.NewReader(got.blob), span, pargzip.BlockSize)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(z.Marshal(), got.ztoc) {
			t.Errorf("span %d: zTOC from the blob differs from the one built while compressing", span)
		}
	}
	var std bytes.Buffer
	zw := gzip.NewWriter(&std)
	zw.Write(tarball)
	zw.Close()
	z, err := soci.FromGzip(bytes.NewReader(std.Bytes()), 1<<20, pargzip.BlockSize)
	if err != nil || z.Spans < 2 {
		t.Errorf("a compress/gzip blob: %v (want a zTOC with spans; soci/ tests read such zTOCs)", err)
	}
}
