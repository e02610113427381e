package exporter_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/lade-build/lade/blobs"
	"github.com/lade-build/lade/cache"
	"github.com/lade-build/lade/exporter"
)

// touchAll sets every entry's atime and mtime under root to t.
func touchAll(tb *testing.T, root string, at time.Time) {
	must(tb, filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.Mode()&os.ModeSymlink != 0 {
			return err
		}
		return os.Chtimes(p, at, at)
	}))
}

// TestReproducibleAcrossCopies: the same layers from two copies at other
// paths with other times give the same digests with one epoch and
// rewrite-timestamp, at any GOMAXPROCS; another epoch gives other digests;
// going back to the first epoch reuses its blobs without reading layers.
func TestReproducibleAcrossCopies(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	bc := &blobs.MemoryCache{}
	export := func(dir string, procs int, epoch time.Time) (exporter.Result, *cache.DirRef) {
		l1, l2, _ := goldenTree(t, dir)
		r1, err := cache.NewDirRef(l1, nil, cache.DirOptions{Description: "l1"})
		must(t, err)
		r2, err := cache.NewDirRef(l2, r1, cache.DirOptions{Description: "l2"})
		must(t, err)
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		res, err := exporter.NewImageWriter(s).Commit(ctx, exporter.Source{Platforms: []exporter.PlatformSource{{Platform: "linux/arm64", Ref: r2}}},
			exporter.Options{Epoch: &epoch, RewriteTimestamp: true, Cache: bc})
		must(t, err)
		verify(t, s, res.Descriptor)
		return res, r2
	}
	e1 := time.Unix(1700000000, 0)
	a, _ := export(filepath.Join(t.TempDir(), "copy-a"), 1, e1)
	dirB := filepath.Join(t.TempDir(), "elsewhere", "copy-b")
	l1, l2, _ := goldenTree(t, dirB)
	touchAll(t, l1, time.Now().Add(time.Hour))
	touchAll(t, l2, time.Now().Add(2*time.Hour))
	rb1, err := cache.NewDirRef(l1, nil, cache.DirOptions{Description: "l1"})
	must(t, err)
	rb2, err := cache.NewDirRef(l2, rb1, cache.DirOptions{Description: "l2"})
	must(t, err)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(8))
	b, err := exporter.NewImageWriter(s).Commit(ctx, exporter.Source{Platforms: []exporter.PlatformSource{{Platform: "linux/arm64", Ref: rb2}}},
		exporter.Options{Epoch: &e1, RewriteTimestamp: true, Cache: bc})
	must(t, err)
	if a.Descriptor.Digest != b.Descriptor.Digest {
		t.Fatalf("two copies gave %s and %s", a.Descriptor.Digest, b.Descriptor.Digest)
	}
	e2 := e1.Add(24 * time.Hour)
	c, err := exporter.NewImageWriter(s).Commit(ctx, exporter.Source{Platforms: []exporter.PlatformSource{{Platform: "linux/arm64", Ref: rb2}}},
		exporter.Options{Epoch: &e2, RewriteTimestamp: true, Cache: bc})
	must(t, err)
	if c.Descriptor.Digest == a.Descriptor.Digest || c.Platforms[0].Layers[0].Digest == a.Platforms[0].Layers[0].Digest {
		t.Fatalf("another epoch gave the same digests")
	}
	for _, l := range c.Platforms[0].Layers {
		if l.Status != blobs.StatusNew {
			t.Errorf("a blob made for another epoch was reused: %+v", l)
		}
	}
	back, err := exporter.NewImageWriter(s).Commit(ctx, exporter.Source{Platforms: []exporter.PlatformSource{{Platform: "linux/arm64", Ref: rb2}}},
		exporter.Options{Epoch: &e1, RewriteTimestamp: true, Cache: bc})
	must(t, err)
	if back.Descriptor.Digest != a.Descriptor.Digest {
		t.Errorf("back to the first epoch: %s, want %s", back.Descriptor.Digest, a.Descriptor.Digest)
	}
	for _, l := range back.Platforms[0].Layers {
		if l.Status != blobs.StatusReused {
			t.Errorf("back to the first epoch: layer %s %s, want reused", l.Digest, l.Status)
		}
	}
}
