package blobs_test

import (
	"context"
	"strings"
	"sync"
	"testing"

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
