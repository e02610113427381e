package imagestore_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lade-build/lade/blobs"
	"github.com/lade-build/lade/cache"
	"github.com/lade-build/lade/exporter"
	"github.com/lade-build/lade/exporter/exportertest"
	"github.com/lade-build/lade/imagestore"
)

// layerTree writes n directory snapshots under dir, each adding a file.
func layerTree(t *testing.T, dir string, n int) cache.Ref {
	t.Helper()
	var top cache.Ref
	for i := 0; i < n; i++ {
		d := filepath.Join(dir, fmt.Sprintf("l%d", i))
		for j := 0; j <= i; j++ {
			p := filepath.Join(d, fmt.Sprintf("f%d", j))
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(strings.Repeat(fmt.Sprint(j), 200000)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		r, err := cache.NewDirRef(d, top, cache.DirOptions{Description: fmt.Sprintf("l%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		top = r
	}
	return top
}

// TestConcurrentExports: 8 exports of overlapping refs into one store, from
// separately opened stores (as separate processes would), give identical
// results, and each shared layer is computed once.
func TestConcurrentExports(t *testing.T) {
	root := t.TempDir()
	dir := t.TempDir()
	top := layerTree(t, dir, 4)
	epoch := time.Unix(1700000000, 0)
	const n = 8
	results := make([]exporter.Result, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			s, err := imagestore.Open(ctx, root)
			if err != nil {
				t.Error(err)
				return
			}
			defer s.Close()
			lctx, release, err := s.WithLease(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			defer release(ctx)
			// half of them export only the lower three layers
			ref := top
			if i%2 == 1 {
				ref = top.Parent()
			}
			res, err := exporter.NewImageWriter(s.Content()).Commit(lctx, exporter.Source{Platforms: []exporter.PlatformSource{{Platform: "linux/amd64", Ref: ref}}},
				exporter.Options{Epoch: &epoch, Cache: s.BlobCache(), Locker: s.Locker()})
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := exportertest.Verify(lctx, s.Content(), res.Descriptor); err != nil {
				t.Error(err)
			}
			if err := s.SetImage(lctx, fmt.Sprintf("img%d", i), res.Descriptor); err != nil {
				t.Error(err)
			}
			results[i] = res
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	news := map[string]int{}
	for i, r := range results {
		if r.Descriptor.Digest != results[i%2].Descriptor.Digest {
			t.Errorf("export %d gave %s, export %d gave %s", i, r.Descriptor.Digest, i%2, results[i%2].Descriptor.Digest)
		}
		for _, l := range r.Platforms[0].Layers {
			if l.Status == blobs.StatusNew {
				news[l.RefID]++
			}
		}
	}
	if len(news) != 4 {
		t.Errorf("%d layers computed, want 4: %v", len(news), news)
	}
	for id, c := range news {
		if c != 1 {
			t.Errorf("layer %s computed %d times, want once", id, c)
		}
	}
	s, err := imagestore.Open(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	faults, err := s.Check(context.Background())
	if err != nil || len(faults) > 0 {
		t.Errorf("store not clean: %v %v", faults, err)
	}
}
