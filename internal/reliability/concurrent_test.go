package reliability

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/lade-build/lade/blobs"
)

// TestConcurrentExports runs 8 `lade export` processes at once into one
// store. Their inputs overlap: every process exports base (4 MiB), mid
// (base plus 2 MiB) and one of four tops (mid plus 1 MiB of its own), so
// processes i and i+4 export identical inputs. All must succeed; identical
// inputs must give identical root digests and different tops different
// ones; across the 8 --metadata-file results every layer diffID must be
// "new" exactly once (the store's blob cache and cross-process locks make
// one process compute a shared layer and the others reuse it) and no layer
// may have any other status than new or reused; lade check is clean.
func TestConcurrentExports(t *testing.T) {
	root := filepath.Join(t.TempDir(), "store")
	c := newCLI(t, root)
	in := t.TempDir()
	base, mid := filepath.Join(in, "base"), filepath.Join(in, "mid")
	writeRandom(t, filepath.Join(base, "base.bin"), 4<<20, 11)
	writeFile(t, filepath.Join(base, "etc/os-release"), "ID=lade\n", 0o644)
	cpTree(t, base, mid)
	writeRandom(t, filepath.Join(mid, "mid.bin"), 2<<20, 12)
	var tops []string
	for k := range 4 {
		top := filepath.Join(in, fmt.Sprintf("top%d", k))
		cpTree(t, mid, top)
		writeRandom(t, filepath.Join(top, "top.bin"), 1<<20, uint64(20+k))
		tops = append(tops, top)
	}

	const n = 8
	results := make([]result, n)
	mds := make([]string, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		mds[i] = filepath.Join(in, fmt.Sprintf("md%d.json", i))
		cmd := c.command(context.Background(), "export", "--progress", "quiet", "--metadata-file", mds[i],
			"-o", fmt.Sprintf("type=image,name=conc:%d,source-date-epoch=1700000000", i), base, mid, tops[i%4])
		wg.Go(func() {
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			<-start
			err := cmd.Run()
			results[i] = result{args: cmd.Args, stdout: stdout.String(), stderr: stderr.String()}
			if err != nil {
				results[i].code = -1
				if ee, ok := err.(*exec.ExitError); ok {
					results[i].code = ee.ExitCode()
				}
			}
		})
	}
	close(start)
	wg.Wait()
	for i, r := range results {
		if r.code != 0 {
			t.Fatalf("process %d: %s", i, r)
		}
	}

	roots := make([]string, n)
	newCount := map[string]int{}
	for i := range n {
		res := readMetadata(t, mds[i])
		roots[i] = res[0].Result.Descriptor.Digest.String()
		for _, l := range res[0].Result.Platforms[0].Layers {
			switch l.Status {
			case blobs.StatusNew:
				newCount[l.DiffID.String()]++
			case blobs.StatusReused:
				newCount[l.DiffID.String()] += 0
			default:
				t.Errorf("process %d: layer %s has status %q", i, l.DiffID, l.Status)
			}
		}
	}
	for i := range n {
		for j := range n {
			if same := roots[i] == roots[j]; same != (i%4 == j%4) {
				t.Errorf("processes %d and %d: root digests %s and %s (identical inputs: %v)", i, j, roots[i], roots[j], i%4 == j%4)
			}
		}
	}
	if len(newCount) != 6 {
		t.Errorf("%d distinct layers across the exports, want 6 (base, mid, 4 tops)", len(newCount))
	}
	for diffID, count := range newCount {
		if count != 1 {
			t.Errorf("layer %s computed %d times across the 8 processes, want once", diffID, count)
		}
	}
	c.checkClean()
	var names []string
	for i := range n {
		names = append(names, fmt.Sprintf("conc:%d", i))
	}
	verifyImages(t, root, names)
}

// cpTree copies the tree src to dst with cp -a (everything preserved).
func cpTree(t testing.TB, src, dst string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -a %s %s: %v\n%s", src, dst, err, out)
	}
}
