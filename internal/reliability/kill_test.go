package reliability

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lade-build/lade/imagestore"
)

// startAndWaitIngest starts cmd and returns once an ingest directory not in
// before appears under root (the layer is being written), or cmd exited.
// It returns the time the ingest appeared (zero if it never did) and a
// channel delivering cmd's exit.
func startAndWaitIngest(t testing.TB, cmd *exec.Cmd, root string, before map[string]bool) (time.Time, <-chan error) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for name := range ingestDirs(root) {
			if !before[name] {
				return time.Now(), exited
			}
		}
		select {
		case err := <-exited:
			ch := make(chan error, 1)
			ch <- err
			return time.Time{}, ch
		case <-time.After(time.Millisecond):
		}
	}
	_ = cmd.Process.Kill()
	<-exited
	t.Fatal("no ingest appeared within 30s")
	return time.Time{}, nil
}

// TestKillExportMidLayer kills `lade export` with SIGKILL while it writes a
// 10 MiB layer (random data, compression=gzip-compat: about 0.2-0.3 s of
// compression), 20 times at a random moment after the layer's ingest
// appeared (within 70% of the layer's calibrated time). After each kill
// the same export, run again, succeeds. After all of them:
//   - every image of a finished export is in the store and passes the
//     output oracle;
//   - lade check exits non-zero listing only ingest and lease faults (a
//     killed process cannot release its lease nor abort its ingest, and
//     Check cannot tell them from a running export's), at most one of each
//     per kill: no blob is corrupt or missing, no image points at missing
//     content;
//   - lade prune succeeds, keeps every image's content, and removes the
//     leases and ingests of the killed processes: lade check is clean.
func TestKillExportMidLayer(t *testing.T) {
	k := newKillFixture(t)
	c, root, export := k.c, k.root, k.export
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
	const runs = 20
	kills := 0
	var names []string
	for i := 1; i <= runs; i++ {
		k.touch(t, i)
		before := ingestDirs(root)
		cmd := c.command(context.Background(), export(fmt.Sprintf("kill:%d", i))...)
		appeared, exited := startAndWaitIngest(t, cmd, root, before)
		if !appeared.IsZero() {
			time.Sleep(time.Duration(rng.Int64N(int64(k.layerTime) * 7 / 10)))
			_ = cmd.Process.Signal(syscall.SIGKILL)
		}
		err := <-exited
		var exit *exec.ExitError
		switch {
		case errors.As(err, &exit) && exit.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL:
			kills++
		case err == nil:
			names = append(names, fmt.Sprintf("kill:%d", i))
		default:
			t.Fatalf("run %d: export failed on its own: %v", i, err)
		}
		name := fmt.Sprintf("after:%d", i)
		c.ok(export(name)...)
		names = append(names, name)
	}
	t.Logf("%d of %d exports killed mid-layer", kills, runs)
	if kills < runs*3/4 {
		t.Errorf("only %d of %d exports were killed before they finished", kills, runs)
	}

	verifyImages(t, root, append(names, "kill:calibrate"))
	faults := c.checkFaults()
	leftovers(t, faults, kills)
	r := c.ok("prune")
	t.Logf("lade prune: %s", strings.TrimSpace(r.stdout))
	verifyImages(t, root, append(names, "kill:calibrate"))
	// Leases record their owning process: prune removes those of the
	// killed exports, and containerd's GC their ingests.
	if f := c.checkFaults(); len(f) != 0 {
		t.Errorf("lade check after prune: %v", f)
	}
}

// killFixture is a store and a 10 MiB single-layer directory whose export
// (compression=gzip-compat) takes a few hundred milliseconds.
type killFixture struct {
	c      *cli
	root   string
	big    string
	export func(name string) []string
	// layerTime is how long the layer took, from its ingest to the end of
	// the process, in a calibration run (image kill:calibrate).
	layerTime time.Duration
}

func newKillFixture(t *testing.T) killFixture {
	k := killFixture{root: filepath.Join(t.TempDir(), "store")}
	k.c = newCLI(t, k.root)
	layer := filepath.Join(t.TempDir(), "big")
	k.big = filepath.Join(layer, "blob")
	writeRandom(t, k.big, 10<<20, 42)
	writeFile(t, filepath.Join(layer, "etc/small"), "small\n", 0o644)
	k.export = func(name string) []string {
		return []string{"export", "--progress", "quiet", "-o", "type=image,name=" + name + ",compression=gzip-compat", layer}
	}
	k.touch(t, 0)
	appeared, exited := startAndWaitIngest(t, k.c.command(context.Background(), k.export("kill:calibrate")...), k.root, ingestDirs(k.root))
	if err := <-exited; err != nil || appeared.IsZero() {
		t.Fatalf("calibration export: %v (ingest seen: %v)", err, !appeared.IsZero())
	}
	k.layerTime = time.Since(appeared)
	t.Logf("layer written in about %v", k.layerTime)
	return k
}

// touch gives the layer a new snapshot identity: the blob cache misses.
func (k killFixture) touch(t testing.TB, i int) {
	mt := time.Date(2024, 1, 1, 0, 0, i, 0, time.UTC)
	must(t, os.Chtimes(k.big, mt, mt))
}

// TestInterruptExportMidLayer sends SIGINT to `lade export` at a random
// moment of its layer, 5 times: lade must stop with exit code 1 and one
// line saying it was cancelled, and clean up after itself (unlike after
// SIGKILL): lade check finds nothing at all, no ingest directory is left,
// and the images of the exports that finished first are sound.
func TestInterruptExportMidLayer(t *testing.T) {
	k := newKillFixture(t)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 10))
	names := []string{"kill:calibrate"}
	interrupted := 0
	for i := 1; i <= 5; i++ {
		k.touch(t, i)
		name := fmt.Sprintf("int:%d", i)
		cmd := k.c.command(context.Background(), k.export(name)...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		appeared, exited := startAndWaitIngest(t, cmd, k.root, ingestDirs(k.root))
		if !appeared.IsZero() {
			time.Sleep(time.Duration(rng.Int64N(int64(k.layerTime) * 7 / 10)))
			_ = cmd.Process.Signal(syscall.SIGINT)
		}
		err := <-exited
		var exit *exec.ExitError
		switch {
		case err == nil:
			names = append(names, name)
		case errors.As(err, &exit) && exit.ExitCode() == 1:
			interrupted++
			msg := strings.TrimSpace(stderr.String())
			if strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "lade: ") || !strings.Contains(msg, "context canceled") {
				t.Errorf("run %d: interrupted export said:\n%s", i, msg)
			}
		default:
			t.Fatalf("run %d: %v\n%s", i, err, stderr.String())
		}
		if f := k.c.checkFaults(); len(f) != 0 {
			t.Errorf("run %d: lade check after SIGINT: %v", i, f)
		}
		if n := len(ingestDirs(k.root)); n != 0 {
			t.Errorf("run %d: %d ingest directories left", i, n)
		}
	}
	if interrupted < 3 {
		t.Errorf("only %d of 5 exports were interrupted before they finished", interrupted)
	}
	verifyImages(t, k.root, names)
}

// leftovers fails the test unless faults (of lade check) are only ingests
// and leases, at most limit of each.
func leftovers(t testing.TB, faults map[string][]string, limit int) {
	t.Helper()
	for kind, lines := range faults {
		switch kind {
		case string(imagestore.FaultIngest), string(imagestore.FaultLease):
			if len(lines) > limit {
				t.Errorf("%d %s faults after %d kills:\n%s", len(lines), kind, limit, strings.Join(lines, "\n"))
			}
		default:
			t.Errorf("lade check: %s faults:\n%s", kind, strings.Join(lines, "\n"))
		}
	}
	t.Logf("left by killed exports: %d ingests, %d leases", len(faults["ingest"]), len(faults["lease"]))
}
