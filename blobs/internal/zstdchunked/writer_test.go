package zstdchunked

import (
	"archive/tar"
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	zcheck "github.com/lade-build/lade/internal/testutil/zstdchunked"
	"go.podman.io/storage/pkg/chunked/compressor"
)

// TestReadBack: every layer is read back through containers/storage's
// reader (TOC, tar-split), each file's frames and each chunk decompressed
// alone, and compared with the tar.
func TestReadBack(t *testing.T) {
	files := testTree()
	tarball := makeTar(t, files)
	for _, level := range []int{1, 3, 10} {
		blob, ann := compress(t, tarball, level)
		toc, got, err := zcheck.Check(blob, ann)
		if err != nil {
			t.Fatalf("level %d: %v", level, err)
		}
		if !bytes.Equal(got, tarball) {
			t.Fatalf("level %d: a plain zstd reader does not get the tar back", level)
		}
		if n := countFiles(toc); n != len(files) {
			t.Errorf("level %d: TOC has %d files, the tree %d", level, n, len(files))
		}
	}
}

// TestWriteSizes: the bytes do not depend on how the tar is written.
func TestWriteSizes(t *testing.T) {
	tarball := makeTar(t, testTree())
	want, wantAnn := compress(t, tarball, 3)
	for _, pieces := range [][]int{{1}, {511, 513}, {7, 4096, 1 << 20}, {300 << 10}} {
		got, ann := compress(t, tarball, 3, pieces...)
		if !bytes.Equal(got, want) || ann[ManifestChecksumKey] != wantAnn[ManifestChecksumKey] {
			t.Errorf("writes of %v bytes give other bytes", pieces)
		}
	}
}

// TestSameAsContainersStorage: the TOC (but for frame offsets, as the
// frames are compressed differently) and the tar-split are those
// containers/storage's own compressor makes for the same tar: the same
// chunk boundaries, zeros chunks, digests and metadata.
func TestSameAsContainersStorage(t *testing.T) {
	ours := sameAsStorage(t, makeTar(t, testTree()), 1<<20)
	var chunks, zeros int
	for _, e := range ours.Entries {
		if e.Type == typeChunk {
			chunks++
		}
		if e.ChunkType == chunkTypeZeros {
			zeros++
		}
	}
	if chunks < 5 || zeros < 3 {
		t.Errorf("test tree gives %d chunk entries and %d zeros chunks: it should exercise both", chunks, zeros)
	}
}

// TestReadAnnotations: the annotations read back from a blob's footer and
// TOC are those the writer gave; a plain zstd blob has none.
func TestReadAnnotations(t *testing.T) {
	tarball := makeTar(t, testTree())
	blob, ann := compress(t, tarball, 3)
	got, err := ReadAnnotations(bytes.NewReader(blob), int64(len(blob)))
	if err != nil || !reflect.DeepEqual(got, ann) {
		t.Errorf("ReadAnnotations = %v, %v; want %v", got, err, ann)
	}
	enc, _ := zstd.NewWriter(nil)
	plain := enc.EncodeAll(tarball, nil)
	if got, err := ReadAnnotations(bytes.NewReader(plain), int64(len(plain))); got != nil || err != nil {
		t.Errorf("plain zstd blob: ReadAnnotations = %v, %v", got, err)
	}
}

// countFiles counts the TOC's entries but chunks.
func countFiles(toc *zcheck.TOC) int {
	n := 0
	for _, e := range toc.Entries {
		if e.Type != typeChunk {
			n++
		}
	}
	return n
}

// TestCheckFails: the reader-side check is not vacuous: a wrong TOC
// checksum and a damaged frame are caught.
func TestCheckFails(t *testing.T) {
	blob, ann := compress(t, makeTar(t, testTree()), 3)
	bad := maps.Clone(ann)
	bad[ManifestChecksumKey] = "sha256:" + strings.Repeat("0", 64)
	if _, _, err := zcheck.Check(blob, bad); err == nil {
		t.Error("a wrong manifest checksum passes")
	}
	damaged := bytes.Clone(blob)
	damaged[len(damaged)/3] ^= 0xff
	if _, _, err := zcheck.Check(damaged, ann); err == nil {
		t.Error("a damaged frame passes")
	}
}

// sameAsStorage compresses tarball with lade's writer (in writes of
// piece bytes) and with containers/storage's compressor, and checks that
// their TOCs (but for frame offsets) and tar-splits are the same; it
// returns lade's TOC.
func sameAsStorage(t *testing.T, tarball []byte, piece int) *zcheck.TOC {
	t.Helper()
	blob, ann := compress(t, tarball, 3, piece)
	ours, ourSplit, err := zcheck.ReadTOC(blob, ann)
	if err != nil {
		t.Fatal(err)
	}
	var theirBlob bytes.Buffer
	theirAnn := map[string]string{}
	level := 3
	cw, err := compressor.ZstdCompressor(&theirBlob, theirAnn, &level)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cw.Write(tarball); err != nil {
		t.Fatal(err)
	}
	if err := cw.Close(); err != nil {
		t.Fatal(err)
	}
	theirs, theirSplit, err := zcheck.ReadTOC(theirBlob.Bytes(), theirAnn)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ourSplit, theirSplit) {
		t.Errorf("tar-split differs from containers/storage's:\n%s\n%s", ourSplit, theirSplit)
	}
	norm := func(toc *zcheck.TOC) []zcheck.FileMetadata {
		out := slices.Clone(toc.Entries)
		for i := range out {
			out[i].Offset, out[i].EndOffset = 0, 0
			for _, tp := range []**time.Time{&out[i].ModTime, &out[i].AccessTime, &out[i].ChangeTime} {
				if *tp != nil {
					u := (*tp).UTC()
					*tp = &u
				}
			}
		}
		return out
	}
	if a, b := norm(ours), norm(theirs); !reflect.DeepEqual(a, b) {
		t.Errorf("TOC entries differ from containers/storage's:\n%+v\n%+v", a, b)
	}
	return ours
}

// TestZeroRunsAsStorage: files of random bytes and zero runs of every
// length around the zeros-chunk threshold, written in odd pieces (runs
// cross writes), chunk as containers/storage's compressor chunks them.
func TestZeroRunsAsStorage(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	var files []testFile
	for f := range 8 {
		var data []byte
		for len(data) < 300<<10 {
			if r.IntN(2) == 0 {
				data = append(data, make([]byte, 1+r.IntN(2*holesThreshold))...)
			} else {
				data = append(data, randomBytes(uint64(len(data)), 1+r.IntN(5000))...)
			}
		}
		files = append(files, testFile{hdr: tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("f%d", f), Mode: 0o644, Size: int64(len(data))}, data: data})
	}
	tarball := makeTar(t, files)
	for _, piece := range []int{1 << 20, 777, 4093} {
		toc := sameAsStorage(t, tarball, piece)
		zeros := 0
		for _, e := range toc.Entries {
			if e.ChunkType == chunkTypeZeros {
				zeros++
			}
		}
		if zeros < 50 {
			t.Fatalf("only %d zeros chunks: the test should make many", zeros)
		}
	}
	blob, ann := compress(t, tarball, 3, 777)
	if _, _, err := zcheck.Check(blob, ann); err != nil {
		t.Fatal(err)
	}
}
