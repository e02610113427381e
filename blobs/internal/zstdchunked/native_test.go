package zstdchunked

import (
	"bytes"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/lade-build/lade/blobs/internal/libzstd"
	zcheck "github.com/lade-build/lade/internal/testutil/zstdchunked"
)

// TestNativeFrames: with libzstd's frames (in a -tags native build) every
// layer reads back through containers/storage's reader, the bytes do not
// depend on how the tar is written, long frames (streamed) included, and
// the TOC but for frame offsets and the tar-split are klauspost's. A
// build without libzstd refuses native frames with an error naming the
// build tag.
func TestNativeFrames(t *testing.T) {
	if !libzstd.Available {
		if _, err := NewWriter(io.Discard, 3, true); err == nil || !strings.Contains(err.Error(), "-tags native") {
			t.Fatalf("NewWriter(native) without libzstd: %v, want an error naming -tags native", err)
		}
		return
	}
	tarball := makeTar(t, testTree())
	goBlob, goAnn := compress(t, tarball, 3)
	for _, level := range []int{1, 3, 10} {
		blob, ann := compressWith(t, tarball, level, true)
		toc, got, err := zcheck.Check(blob, ann)
		if err != nil {
			t.Fatalf("level %d: %v", level, err)
		}
		if !bytes.Equal(got, tarball) {
			t.Fatalf("level %d: a plain zstd reader does not get the tar back", level)
		}
		if level != 3 {
			continue
		}
		streamed := false
		for _, e := range toc.Entries {
			streamed = streamed || e.ChunkSize > frameBuffer || (e.Type == typeReg && e.ChunkSize == 0 && e.Size > frameBuffer)
		}
		if !streamed {
			t.Error("no frame of the test tree is longer than frameBuffer: the streamed path is not tested")
		}
		if bytes.Equal(blob, goBlob) {
			t.Error("libzstd's blob is klauspost's: the native frames were not used")
		}
		goTOC, goSplit, err := zcheck.ReadTOC(goBlob, goAnn)
		if err != nil {
			t.Fatal(err)
		}
		_, split, err := zcheck.ReadTOC(blob, ann)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(split, goSplit) || !reflect.DeepEqual(withoutOffsets(toc), withoutOffsets(goTOC)) {
			t.Error("libzstd's TOC or tar-split differs from klauspost's beyond frame offsets")
		}
		for _, pieces := range [][]int{{1}, {511, 513}, {300 << 10}} {
			if again, _ := compressWith(t, tarball, 3, true, pieces...); !bytes.Equal(again, blob) {
				t.Errorf("libzstd: writes of %v bytes give other bytes", pieces)
			}
		}
	}
}

// withoutOffsets returns the TOC's entries with their frame offsets zeroed.
func withoutOffsets(toc *zcheck.TOC) []zcheck.FileMetadata {
	out := make([]zcheck.FileMetadata, len(toc.Entries))
	for i, e := range toc.Entries {
		e.Offset, e.EndOffset = 0, 0
		out[i] = e
	}
	return out
}
