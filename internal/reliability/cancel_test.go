package reliability

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/lade-build/lade/blobs"
	"github.com/lade-build/lade/cache"
	"github.com/lade-build/lade/exporter"
	"github.com/lade-build/lade/exporter/exportertest"
	"github.com/lade-build/lade/imagestore"
)

// layeredTree is three directory snapshots, each a full root filesystem:
// l1 holds a, l2 adds b, l3 adds c (size bytes of random data each).
type layeredTree struct {
	layers []string
	files  [][]string // files of each layer, full paths
}

func newLayeredTree(t testing.TB, size int64) layeredTree {
	t.Helper()
	dir := t.TempDir()
	var lt layeredTree
	var names []string
	for i, n := range []string{"a", "b", "c"} {
		l := filepath.Join(dir, fmt.Sprintf("l%d", i+1))
		if i > 0 {
			cpTree(t, lt.layers[i-1], l)
		}
		writeRandom(t, filepath.Join(l, "data", n), size, uint64(i+1))
		names = append(names, n)
		var files []string
		for _, f := range names {
			files = append(files, filepath.Join(l, "data", f))
		}
		lt.layers = append(lt.layers, l)
		lt.files = append(lt.files, files)
	}
	return lt
}

// touch gives every file of every layer the mtime base+i seconds, so every
// snapshot gets a new identity (the blob cache misses) with the layers
// still diffing as before (a file has the same mtime in every layer).
func (lt layeredTree) touch(t testing.TB, i int) {
	t.Helper()
	mt := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second)
	for _, files := range lt.files {
		for _, f := range files {
			must(t, os.Chtimes(f, mt, mt))
		}
	}
}

// refs returns fresh refs over the snapshots (a DirRef computes its ID once).
func (lt layeredTree) refs(t testing.TB) cache.Ref {
	t.Helper()
	var top cache.Ref
	for _, l := range lt.layers {
		r, err := cache.NewDirRef(l, top, cache.DirOptions{})
		must(t, err)
		top = r
	}
	return top
}

// exportOnce runs one library export the way lade export does: a lease
// around Commit and SetImage, released on a context that outlives ctx.
func exportOnce(ctx context.Context, s *imagestore.Store, top cache.Ref, name string) (exporter.Result, error) {
	lctx, release, err := s.WithLease(ctx)
	if err != nil {
		return exporter.Result{}, err
	}
	src := exporter.Source{Platforms: []exporter.PlatformSource{{Platform: "linux/amd64", Ref: top}}}
	w := exporter.NewImageWriter(s.Content())
	res, err := w.Commit(lctx, src, exporter.Options{Cache: s.BlobCache(), Locker: s.Locker()})
	if err == nil {
		err = s.SetImage(lctx, name, res.Descriptor)
	}
	if rerr := release(context.WithoutCancel(ctx)); rerr != nil {
		return res, errors.Join(err, fmt.Errorf("release lease: %w", rerr))
	}
	return res, err
}

// storeClean fails the test unless Check finds nothing and no ingest
// directory is left on disk (Check sees only ingests the database knows).
func storeClean(t testing.TB, s *imagestore.Store, when string) {
	t.Helper()
	faults, err := s.Check(context.Background())
	if err != nil {
		t.Fatalf("%s: Check: %v", when, err)
	}
	for _, f := range faults {
		t.Errorf("%s: fault %s", when, f)
	}
	ingest := filepath.Join(s.Root(), "content", "ingest")
	if ents, err := os.ReadDir(ingest); err == nil && len(ents) > 0 {
		t.Errorf("%s: %d ingest directories left on disk under %s", when, len(ents), ingest)
	}
}

// TestCancelExportAtRandomPoints cancels a library export (imagestore.Open,
// WithLease, ImageWriter.Commit with the store's blob cache and locker,
// SetImage) of a three-layer tree of 6 MiB after a random delay within
// three quarters of the time the fastest of 3 uncancelled exports of it
// took (measured first, so the cancels land mid-way however fast the
// machine), narrowed to the delay of any cancel that came too late to
// stop an export, 20 times. After each: the export either succeeded or reports
// context.Canceled within 2 s of the cancel; once the lease is released
// Check finds nothing (every blob verifies, no ingest, no lease), no ingest
// directory is left on disk, and no goroutine of the export is left
// running; and an export of the same refs, not cancelled, succeeds and
// passes the output oracle.
func TestCancelExportAtRandomPoints(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, filepath.Join(t.TempDir(), "store"))
	lt := newLayeredTree(t, 2<<20)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	startSharedWorkers(t)
	fastest := time.Hour
	for i := range 3 {
		lt.touch(t, -1-i)
		start := time.Now()
		if _, err := exportOnce(ctx, s, lt.refs(t), fmt.Sprintf("calibrate:%d", i)); err != nil {
			t.Fatalf("export: %v", err)
		}
		fastest = min(fastest, time.Since(start))
	}
	window := max(fastest*3/4, time.Millisecond)
	t.Logf("the fastest of 3 exports took %v: cancels within %v", fastest.Round(time.Microsecond), window.Round(time.Microsecond))
	baseline := runtime.NumGoroutine()
	const runs = 20
	cancelled := 0
	for i := range runs {
		lt.touch(t, i)
		top := lt.refs(t)
		delay := time.Duration(rng.Int64N(int64(window)))
		cctx, cancel := context.WithCancel(ctx)
		timer := time.AfterFunc(delay, cancel)
		start := time.Now()
		_, err := exportOnce(cctx, s, top, fmt.Sprintf("cancel:%d", i))
		took := time.Since(start)
		timer.Stop()
		cancel()
		if took > delay+2*time.Second {
			t.Errorf("run %d: export returned %v after it was cancelled", i, took-delay)
		}
		if err != nil {
			cancelled++
			if !errors.Is(err, context.Canceled) {
				t.Errorf("run %d: cancelled after %v: error does not wrap context.Canceled: %v", i, delay, err)
			}
		} else if delay < took {
			// The cancel came while the export was finishing, past its
			// last cancellation point: later cancels are drawn earlier.
			window = max(delay, time.Millisecond)
		}
		t.Logf("run %d: cancel after %v, export returned after %v: %v", i, delay.Round(time.Microsecond), took.Round(time.Microsecond), err)
		storeClean(t, s, fmt.Sprintf("run %d after cancel at %v", i, delay))
		noGoroutineLeak(t, baseline, fmt.Sprintf("run %d after cancel at %v", i, delay))

		res, err := exportOnce(ctx, s, top, fmt.Sprintf("next:%d", i))
		if err != nil {
			t.Fatalf("run %d: export after the cancelled one: %v", i, err)
		}
		if _, err := exportertest.Verify(ctx, s.Content(), res.Descriptor); err != nil {
			t.Fatalf("run %d: export after the cancelled one: %v", i, err)
		}
		storeClean(t, s, fmt.Sprintf("run %d after the next export", i))
		if t.Failed() {
			t.FailNow()
		}
	}
	t.Logf("%d of %d exports were cancelled before they finished", cancelled, runs)
	if cancelled < runs/2 {
		t.Errorf("only %d of %d exports were cancelled mid-way: the tree is too small to test anything", cancelled, runs)
	}
}

// startSharedWorkers starts the process-wide gzip workers (pargzip's
// pool, started on first use and kept for the process's life), so that the
// goroutine baseline counts them.
func startSharedWorkers(t testing.TB) {
	t.Helper()
	zw, err := blobs.DefaultCompression.NewWriter(io.Discard, 1)
	if err == nil {
		err = zw.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
}

// noGoroutineLeak fails the test unless the number of goroutines drops
// back to baseline within 2 s, showing the ones left.
func noGoroutineLeak(t testing.TB, baseline int, when string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			var buf bytes.Buffer
			_ = pprof.Lookup("goroutine").WriteTo(&buf, 1)
			t.Fatalf("%s: %d goroutines, %d before the export:\n%s", when, runtime.NumGoroutine(), baseline, buf.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
