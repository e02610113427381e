package zstdchunked

import (
	"bytes"
	"encoding/base64"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"go.podman.io/storage/pkg/chunked/compressor"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// TestReadBack: every layer is read back through containers/storage's
// reader (TOC, tar-split), each file's frames and each chunk decompressed
// alone, and compared with the tar.
func TestReadBack(t *testing.T) {
	files := testTree()
	tarball := makeTar(t, files)
	for _, level := range []int{1, 3, 10} {
		blob, ann := compress(t, tarball, level)
		checkLayer(t, tarball, blob, ann, files)
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
	files := testTree()
	tarball := makeTar(t, files)
	blob, ann := compress(t, tarball, 3)
	ours, ourSplit := readTOC(t, blob, ann)

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
	theirs, theirSplit := readTOC(t, theirBlob.Bytes(), theirAnn)
	if !bytes.Equal(ourSplit, theirSplit) {
		t.Errorf("tar-split differs from containers/storage's:\n%s\n%s", ourSplit, theirSplit)
	}
	norm := func(toc *TOC) []FileMetadata {
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
