package archive_test

import (
	"bytes"
	"context"
	"math/rand"
	"testing"
	"time"

	"github.com/lade-build/lade/exporter/archive"
	"github.com/lade-build/lade/exporter/archive/archivetest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// writeRecorder keeps what is written and the largest single write.
type writeRecorder struct {
	bytes.Buffer
	largest int
}

func (w *writeRecorder) Write(p []byte) (int, error) {
	w.largest = max(w.largest, len(p))
	return w.Buffer.Write(p)
}

// TestTarWriterChunk: with SetChunk, a blob goes out in writes of at most
// that many bytes, and the tar is byte for byte the default one.
func TestTarWriterChunk(t *testing.T) {
	ctx := context.Background()
	cs := archivetest.NewStore(t)
	data := make([]byte, 3<<20+777)
	rand.New(rand.NewSource(5)).Read(data)
	desc := archivetest.Put(t, cs, ocispec.MediaTypeImageLayer, data)
	write := func(chunk int) *writeRecorder {
		var w writeRecorder
		tw := archive.NewTarWriter(&w, time.Time{})
		if chunk > 0 {
			tw.SetChunk(chunk)
		}
		if err := tw.Blob(ctx, cs, archive.Blob{Desc: desc}, nil); err != nil {
			t.Fatal(err)
		}
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		return &w
	}
	want := write(0)
	const chunk = 32<<10 - 64
	got := write(chunk)
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Errorf("the tar with %d-byte chunks differs from the default one", chunk)
	}
	if got.largest > chunk {
		t.Errorf("largest write %d bytes, want at most %d", got.largest, chunk)
	}
	if want.largest <= chunk {
		t.Errorf("default largest write %d bytes: the test does not tell chunks apart", want.largest)
	}
}
