package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// cliResult is what the lade CLI measurements found.
type cliResult struct {
	smallMiB, bigMiB int
	// rss[compression] = {small, big} peak RSS in bytes (getrusage maxrss).
	rss  map[string][2]int64
	took map[string][2]time.Duration
	// Warm re-export of a warmN-layer image of warmMiB.
	warmN, warmMiB int
	warmCold       time.Duration
	warmRuns       []time.Duration
	warmStatuses   map[string]int
}

// cliCompressions are the compressions of the RSS test.
var cliCompressions = []string{"gzip", "zstd"}

// runLadeCLI measures lade export's peak RSS on a 64 MiB layer and on a
// large one, and the warm re-export of a multi-layer image.
func runLadeCLI(ctx context.Context, cfg config, ladeBin string) (*cliResult, error) {
	dir := filepath.Join(cfg.work, "lade-cli")
	res := &cliResult{smallMiB: 64, bigMiB: cfg.bigMiB, rss: map[string][2]int64{}, took: map[string][2]time.Duration{},
		warmN: cfg.warmN, warmMiB: cfg.warmMiB, warmStatuses: map[string]int{}}
	if !cfg.keepData {
		defer os.RemoveAll(dir)
	}
	for i, mib := range []int{res.smallMiB, res.bigMiB} {
		layer := filepath.Join(dir, fmt.Sprintf("layer-%d", mib))
		if err := ensureData(layer, func() error { return writeMixed(layer, int64(mib)<<20, uint64(mib)) }); err != nil {
			return nil, err
		}
		for _, c := range cliCompressions {
			root := filepath.Join(dir, "root-rss")
			_ = os.RemoveAll(root)
			took, rss, err := runLade(ctx, ladeBin, root, "export", "-o", "type=image,name=rss/x:1,compression="+c, layer)
			_ = os.RemoveAll(root)
			if err != nil {
				return nil, err
			}
			r, t := res.rss[c], res.took[c]
			r[i], t[i] = rss, took
			res.rss[c], res.took[c] = r, t
			logf("lade export %5d MiB layer %-5s peak RSS %4d MiB in %6.2fs", mib, c, rss>>20, took.Seconds())
		}
	}
	if err := warmExport(ctx, ladeBin, filepath.Join(dir, "warm"), cfg, res); err != nil {
		return nil, err
	}
	return res, nil
}

// warmExport exports a warmN-layer image twice with one store and times the
// second export, which must reuse every layer's blob.
func warmExport(ctx context.Context, ladeBin, dir string, cfg config, res *cliResult) error {
	var layers []string
	per := int64(cfg.warmMiB) << 20 / int64(cfg.warmN)
	err := ensureData(dir, func() error {
		for i := 1; i <= cfg.warmN; i++ {
			l := filepath.Join(dir, fmt.Sprintf("l%02d", i))
			if i > 1 {
				if err := linkTree(filepath.Join(dir, fmt.Sprintf("l%02d", i-1)), l); err != nil {
					return err
				}
			}
			if err := writeMixed(filepath.Join(l, fmt.Sprintf("layer%02d", i)), per, uint64(1000+i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := 1; i <= cfg.warmN; i++ {
		layers = append(layers, filepath.Join(dir, fmt.Sprintf("l%02d", i)))
	}
	root := filepath.Join(filepath.Dir(dir), "root-warm")
	_ = os.RemoveAll(root)
	defer os.RemoveAll(root)
	md := filepath.Join(filepath.Dir(dir), "warm-md.json")
	args := append([]string{"export", "--metadata-file", md, "-o", "type=image,name=warm/x:1"}, layers...)
	if res.warmCold, _, err = runLade(ctx, ladeBin, root, args...); err != nil {
		return err
	}
	logf("lade export %d layers, %d MiB: cold %.2fs", cfg.warmN, cfg.warmMiB, res.warmCold.Seconds())
	for range 3 {
		took, _, err := runLade(ctx, ladeBin, root, args...)
		if err != nil {
			return err
		}
		res.warmRuns = append(res.warmRuns, took)
		logf("lade export %d layers, %d MiB: warm %.3fs", cfg.warmN, cfg.warmMiB, took.Seconds())
	}
	statuses, err := layerStatuses(md)
	if err != nil {
		return err
	}
	res.warmStatuses = statuses
	return nil
}

// runLade runs the lade CLI with its store at root and returns its wall
// time and peak RSS: getrusage's ru_maxrss of the process.
//
// Go starts children with clone(CLONE_VM|CLONE_VFORK): until it execs, the
// child runs on this process's memory, and the kernel folds that memory's
// high-water mark into the child's ru_maxrss at exec. So this process first
// returns its free memory to the kernel and resets its own high-water mark
// (clear_refs 5); the child's ru_maxrss is then its own peak unless that is
// below this process's resident size, which is checked (and the child's
// VmHWM, polled while it runs, is the cross-check).
func runLade(ctx context.Context, bin, root string, args ...string) (time.Duration, int64, error) {
	debug.FreeOSMemory()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	self, _ := vmHWM(os.Getpid())
	all := append([]string{"--root", root, "--progress", "quiet"}, args...)
	cmd := exec.CommandContext(ctx, bin, all...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	var polled atomic.Int64
	stop := make(chan struct{})
	go func() {
		for {
			if v, err := vmHWM(cmd.Process.Pid); err == nil {
				polled.Store(max(polled.Load(), v))
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	err := cmd.Wait()
	close(stop)
	took := time.Since(start)
	if err != nil {
		return took, 0, fmt.Errorf("lade %s: %v\n%s", strings.Join(all, " "), err, tail(out.String(), 20))
	}
	maxrss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10
	logf("  ru_maxrss %d MiB, polled VmHWM %d MiB, bench's own RSS at start %d MiB", maxrss>>20, polled.Load()>>20, self>>20)
	if maxrss <= self {
		// Below the bench's own size: ru_maxrss says nothing; the polled
		// VmHWM is the best measure left.
		return took, polled.Load(), nil
	}
	return took, maxrss, nil
}

// vmHWM returns the peak resident set (VmHWM) of process pid in bytes.
func vmHWM(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

// layerStatuses counts the layer statuses (new, reused, converted) in a
// lade export metadata file.
func layerStatuses(path string) (map[string]int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var results []struct {
		Result struct {
			Platforms []struct {
				Layers []struct {
					Status string `json:"status"`
				} `json:"layers"`
			} `json:"platforms"`
		} `json:"result"`
	}
	if err := json.Unmarshal(b, &results); err != nil {
		return nil, fmt.Errorf("metadata file %s: %w", path, err)
	}
	out := map[string]int{}
	for _, r := range results {
		for _, p := range r.Result.Platforms {
			for _, l := range p.Layers {
				out[l.Status]++
			}
		}
	}
	return out, nil
}

// ensureData runs gen unless dir holds a completed stamp; gen writes dir.
func ensureData(dir string, gen func() error) error {
	stamp := dir + ".done"
	if _, err := os.Stat(stamp); err == nil {
		return nil
	}
	_ = os.RemoveAll(dir)
	logf("writing %s", dir)
	if err := gen(); err != nil {
		return err
	}
	return os.WriteFile(stamp, nil, 0o644)
}

// writeMixed writes size bytes under dir: files of at most 256 MiB,
// alternately random (incompressible) and text (compressible).
func writeMixed(dir string, size int64, seed uint64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	src := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 1})
	rng := rand.New(src)
	text := textBlock(rand.New(rand.NewPCG(seed, 7)), 4<<20)
	buf := make([]byte, 1<<20)
	const fileMax = 256 << 20
	fileSize := min(fileMax, max(size/4, 1<<20))
	for n := 0; size > 0; n++ {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("f%03d.bin", n)))
		if err != nil {
			return err
		}
		for left := min(size, fileSize); left > 0; {
			chunk := buf[:min(left, int64(len(buf)))]
			if n%2 == 0 {
				_, _ = src.Read(chunk)
			} else {
				off := rng.IntN(len(text) - len(chunk))
				copy(chunk, text[off:])
			}
			if _, err := f.Write(chunk); err != nil {
				f.Close()
				return err
			}
			left -= int64(len(chunk))
			size -= int64(len(chunk))
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}

// linkTree recreates the tree src at dst with hard links to src's files,
// so dst is src plus whatever is written into it next.
func linkTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		return os.Link(path, target)
	})
}
