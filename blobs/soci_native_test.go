//go:build native && cgo

package blobs

import (
	"bytes"
	"io"
	"testing"

	"github.com/awslabs/soci-snapshotter/ztoc"
	"github.com/lade-build/lade/blobs/internal/pargzip"
	"github.com/lade-build/lade/soci"
)

// TestSociZtocOfNativeGzip: layers lade-buildkitd compresses with the
// native codecs (ISA-L at levels 1-3, libdeflate above) get a zTOC from
// one read of the blob, which soci-snapshotter reads: every file
// extracted, every span decompressed alone.
func TestSociZtocOfNativeGzip(t *testing.T) {
	tarball := sociTree(t, 2)
	want := tarFiles(t, tarball)
	for _, level := range []int{1, 6} {
		codec, err := GzipCodec(level)
		if err != nil || codec == "" {
			t.Fatalf("level %d: native gzip not chosen (%q, %v)", level, codec, err)
		}
		var buf bytes.Buffer
		zw, err := Compression{Type: Gzip, Level: &level}.NewWriter(&buf, 2)
		if err != nil {
			t.Fatal(err)
		}
		zw.Write(tarball)
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		blob := buf.Bytes()
		z, err := soci.FromGzip(bytes.NewReader(blob), 2<<20, pargzip.BlockSize)
		if err != nil {
			t.Fatalf("%s: %v", codec, err)
		}
		toc, err := ztoc.Unmarshal(bytes.NewReader(z.Marshal()))
		if err != nil {
			t.Fatal(err)
		}
		if toc.MaxSpanID < 3 {
			t.Errorf("%s: %d spans", codec, toc.MaxSpanID+1)
		}
		sr := io.NewSectionReader(bytes.NewReader(blob), 0, int64(len(blob)))
		for _, f := range toc.FileMetadata {
			if f.Type != "reg" {
				continue
			}
			data, err := toc.ExtractFile(sr, f.Name)
			if err != nil || !bytes.Equal(data, want[f.Name]) {
				t.Fatalf("%s: extract %s: %v", codec, f.Name, err)
			}
		}
		checkSpans(t, toc, blob, tarball)
	}
}
