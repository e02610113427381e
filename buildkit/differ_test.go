package buildkit

import (
	"bytes"
	"context"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/lade-build/lade/internal/testutil"
	"github.com/lade-build/lade/internal/writeback"
	containerdsnapshot "github.com/moby/buildkit/snapshot/containerd"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestDifferStartsWriteBack checks that the differ, given the content
// store a BuildKit worker has (a namespacing wrapper over containerd's
// metadata store), writes blobs through writers whose ingest file
// writeback can find through the wrappers, and that the blob lands in the
// worker's namespace.
func TestDifferStartsWriteBack(t *testing.T) {
	backend, meta := testutil.ContentStores(t)
	cs := containerdsnapshot.NewContentStore(meta, "buildkit")
	d := NewDiffer(cs, nil)

	ctx := context.Background() // no namespace: the differ must add the worker's
	cw, err := d.writer(ctx, "layer-1", ocispecs.MediaTypeImageLayer)
	if err != nil {
		t.Fatal(err)
	}
	wb, ok := cw.(*writeback.Writer) // when writeback.EveryEnv is set
	if !ok {
		if wb, ok = writeback.Wrap(cw, 1<<20).(*writeback.Writer); !ok {
			t.Fatal("writeback.Wrap with an interval did not wrap the differ's writer")
		}
		cw = wb
	}
	data := bytes.Repeat([]byte("lade "), 20<<20/5)
	if _, err := cw.Write(data); err != nil {
		t.Fatal(err)
	}
	if wb.Started() != int64(len(data)) {
		t.Fatalf("write-back started for %d of %d bytes: the differ's ingest file was not found", wb.Started(), len(data))
	}
	want := digest.FromBytes(data)
	if err := cw.Commit(ctx, int64(len(data)), want); err != nil {
		t.Fatal(err)
	}
	cw.Close()
	info, err := cs.Info(ctx, want)
	if err != nil {
		t.Fatalf("the blob is not in the worker's namespace: %v", err)
	}
	if info.Size != int64(len(data)) {
		t.Fatalf("blob size %d, want %d", info.Size, len(data))
	}

	// A store that is not BuildKit's wrapper is written directly.
	plain := NewDiffer(backend, nil)
	if plain.ingester != content.Ingester(backend) || plain.ns != "" {
		t.Fatalf("a plain store was unwrapped: %T %q", plain.ingester, plain.ns)
	}
}
