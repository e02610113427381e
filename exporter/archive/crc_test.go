package archive_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand"
	"testing"
	"time"

	"github.com/lade-build/lade/cache"
	"github.com/lade-build/lade/exporter/archive"
	"github.com/lade-build/lade/exporter/archive/archivetest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestSealedBlob: a blob checked against the CRC-32C a CRCWriter took of
// it makes the same tar as one hashed, in chunks too; a CRC that is not
// the blob's fails as a digest mismatch.
func TestSealedBlob(t *testing.T) {
	ctx := context.Background()
	cs := archivetest.NewStore(t)
	data := make([]byte, 2<<20+333)
	rand.New(rand.NewSource(9)).Read(data)
	var sink bytes.Buffer
	cw := archive.NewCRCWriter(&sink)
	for p := data; len(p) > 0; p = p[min(len(p), 1000):] { // written in pieces, as a compressor does
		if _, err := cw.Write(p[:min(len(p), 1000)]); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(sink.Bytes(), data) {
		t.Fatal("CRCWriter did not pass the bytes through")
	}
	desc := archivetest.Put(t, cs, ocispec.MediaTypeImageLayerGzip, data)
	write := func(sealed bool, crc uint32) ([]byte, error) {
		var w writeRecorder
		tw := archive.NewTarWriter(&w, time.Time{})
		tw.SetChunk(32 << 10)
		var err error
		if sealed {
			err = tw.SealedBlob(ctx, cs, archive.Blob{Desc: desc}, crc, nil)
		} else {
			err = tw.Blob(ctx, cs, archive.Blob{Desc: desc}, nil)
		}
		if err == nil {
			err = tw.Close()
		}
		if w.largest > 32<<10 {
			t.Errorf("largest write %d bytes, want at most 32 KiB", w.largest)
		}
		return w.Bytes(), err
	}
	want, err := write(false, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := write(true, cw.Sum32())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("the tar of the sealed blob differs from the hashed one's")
	}
	if _, err := write(true, cw.Sum32()+1); !errors.Is(err, cache.ErrDigestMismatch) {
		t.Errorf("wrong CRC: %v, want a digest mismatch", err)
	}
}
