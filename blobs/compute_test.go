package blobs_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/lade-build/lade/blobs"
	"github.com/lade-build/lade/cache"
	"github.com/lade-build/lade/exporter/exportertest"
	"github.com/lade-build/lade/progress"
)

func store(t testing.TB) content.Store {
	s, err := local.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestGetDiffPairs(t *testing.T) {
	ctx := context.Background()
	s := store(t)
	base := &exportertest.MemRef{RefID: "base", Files: map[string]string{"a": "aaa"}}
	empty := &exportertest.MemRef{RefID: "empty", Up: base}
	top := &exportertest.MemRef{RefID: "top", Up: empty, Files: map[string]string{"b": strings.Repeat("b", 100)}}
	rec := &progress.Recorder{}
	pairs, err := blobs.GetDiffPairs(ctx, s, top, blobs.Options{Progress: rec})
	if err != nil {
		t.Fatal(err)
	}
	if len(pairs) != 3 || pairs[0].RefID != "base" || pairs[2].RefID != "top" {
		t.Fatalf("pairs not parent first: %+v", pairs)
	}
	if !pairs[1].Empty || pairs[1].DiffID != blobs.EmptyTarDiffID || pairs[0].Empty {
		t.Errorf("empty layer not recognized: %+v", pairs)
	}
	for _, p := range pairs {
		info, err := s.Info(ctx, p.Blob.Digest)
		if err != nil || info.Size != p.Blob.Size {
			t.Fatalf("blob %s not committed: %v", p.Blob.Digest, err)
		}
		rc, err := exportertest.Open(ctx, s, p.Blob)
		if err != nil {
			t.Fatal(err)
		}
		r, _ := exportertest.Decompress(p.Blob.MediaType, rc)
		dg := digestOf(t, r)
		rc.Close()
		if dg != p.DiffID.String() {
			t.Errorf("diffID %s, uncompressed blob hashes to %s", p.DiffID, dg)
		}
	}
	done := map[string]string{}
	for _, e := range rec.Events() {
		if e.Done() {
			done[e.ID] = e.Status
		}
	}
	if done["layer:empty"] != "empty" || done["layer:top"] != "new" {
		t.Errorf("progress statuses %v", done)
	}
}

func TestComputeSharedLayerOnce(t *testing.T) {
	ctx := context.Background()
	s := store(t)
	base := &exportertest.MemRef{RefID: "shared", Files: map[string]string{"a": "a"}}
	a := &exportertest.MemRef{RefID: "a", Up: base, Files: map[string]string{"x": "1"}}
	b := &exportertest.MemRef{RefID: "b", Up: base, Files: map[string]string{"y": "2"}}
	c := blobs.NewComputer(s)
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Compute(ctx, []cache.Ref{a, b, nil}, blobs.Options{Cache: &blobs.MemoryCache{}}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := base.Diffs.Load(); n < 1 || n > 4 {
		t.Errorf("shared base read %d times", n)
	}
	out, err := c.Compute(ctx, []cache.Ref{a, b}, blobs.Options{Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	if out[0][0].Blob.Digest != out[1][0].Blob.Digest {
		t.Error("shared layer gave two blobs")
	}
}

func TestComputeDedupWithinCall(t *testing.T) {
	s := store(t)
	base := &exportertest.MemRef{RefID: "shared", Files: map[string]string{"a": "a"}}
	a := &exportertest.MemRef{RefID: "a", Up: base}
	b := &exportertest.MemRef{RefID: "b", Up: base}
	if _, err := blobs.NewComputer(s).Compute(context.Background(), []cache.Ref{a, b}, blobs.Options{}); err != nil {
		t.Fatal(err)
	}
	if n := base.Diffs.Load(); n != 1 {
		t.Errorf("shared base read %d times in one call, want 1", n)
	}
}

// gatedRef is a MemRef whose layer data does not arrive until gate closes.
type gatedRef struct {
	*exportertest.MemRef
	gate    chan struct{}
	started chan struct{}
}

func (r *gatedRef) Layer() cache.Layer { return r }

func (r *gatedRef) Diff(ctx context.Context, opts cache.DiffOptions) (io.ReadCloser, error) {
	close(r.started)
	select {
	case <-r.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return r.MemRef.Diff(ctx, opts)
}

// TestComputeSmallLayersDoNotWaitForLarge: the largest layer starts first,
// and while it is still running every small layer of the image finishes,
// on the default bound, whatever the number of cores.
func TestComputeSmallLayersDoNotWaitForLarge(t *testing.T) {
	ctx := context.Background()
	s := store(t)
	big := &gatedRef{
		MemRef:  &exportertest.MemRef{RefID: "big", Files: map[string]string{"big": strings.Repeat("x", 1<<20)}},
		gate:    make(chan struct{}),
		started: make(chan struct{}),
	}
	var top cache.Ref = big
	for i := range 8 {
		top = &exportertest.MemRef{RefID: fmt.Sprintf("small-%d", i), Up: top, Files: map[string]string{fmt.Sprintf("f%d", i): "small"}}
	}
	rec := &progress.Recorder{}
	result := make(chan error, 1)
	go func() {
		_, err := blobs.GetDiffPairs(ctx, s, top, blobs.Options{Progress: rec})
		result <- err
	}()
	<-big.started
	deadline := time.Now().Add(10 * time.Second)
	for {
		done := 0
		for _, e := range rec.Events() {
			if e.Done() && strings.HasPrefix(e.ID, "layer:small-") {
				done++
			}
		}
		if done == 8 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 8 small layers done while the large one runs: they wait behind it", done)
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(big.gate)
	if err := <-result; err != nil {
		t.Fatal(err)
	}
}
