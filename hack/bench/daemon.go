package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lade-build/lade/internal/testutil"
	"github.com/moby/buildkit/client"
)

// Daemon kinds: the binary names.
const (
	stock = "buildkitd"
	lade  = "lade-buildkitd"
)

// daemonConfig is the buildkitd.toml of both daemons: the OCI worker on
// overlayfs, no automatic GC during the runs (the bench prunes), no
// containerd worker.
const daemonConfig = `[worker.oci]
  snapshotter = "overlayfs"
  gc = false
[worker.containerd]
  enabled = false
`

// daemon is one daemon kind with its own root, started for each measured
// build so that its peak RSS (VmHWM) is that build's.
type daemon struct {
	kind        string
	bin         string
	buildctlBin string
	root        string
	sockDir     string
	addr        string
	debugAddr   string // Go's pprof, for the export's CPU stages
	// traceTo, when set, receives an execution trace of the next build's
	// export (traceSeconds long, from the exporter's start).
	traceTo      string
	traceSeconds int
	// profileTo, when set, receives a CPU profile of the next measured
	// build (profileSeconds long, from the build's start).
	profileTo      string
	profileSeconds int
	// logDir, when set, receives the daemon's output in DIR/KIND.log
	// (appended at each start) instead of a buffer.
	logDir string

	cmd    *exec.Cmd
	exited chan struct{}
	log    *bytes.Buffer
	logMu  *sync.Mutex
}

// newDaemon prepares a daemon of kind with its state under root.
func newDaemon(kind, binDir, root string) (*daemon, error) {
	sockDir, err := os.MkdirTemp("", "lb-") // short: unix socket paths are limited
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(sockDir, "buildkitd.toml"), []byte(daemonConfig), 0o644); err != nil {
		return nil, err
	}
	return &daemon{
		kind: kind, bin: filepath.Join(binDir, kind), buildctlBin: filepath.Join(binDir, "buildctl"),
		root: root, sockDir: sockDir, addr: "unix://" + filepath.Join(sockDir, "sock"),
		log: &bytes.Buffer{}, logMu: &sync.Mutex{},
	}, nil
}

// start starts the daemon and waits until it answers.
func (d *daemon) start(ctx context.Context) error {
	d.logMu.Lock()
	d.log.Reset()
	d.logMu.Unlock()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	d.debugAddr = l.Addr().String()
	l.Close()
	d.cmd = exec.Command(d.bin, "--config", filepath.Join(d.sockDir, "buildkitd.toml"),
		"--root", d.root, "--addr", d.addr, "--debugaddr", d.debugAddr)
	d.cmd.Stdout, d.cmd.Stderr = lockedWriter{d.log, d.logMu}, lockedWriter{d.log, d.logMu}
	if d.logDir != "" {
		f, err := os.OpenFile(filepath.Join(d.logDir, d.kind+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return fmt.Errorf("--daemon-logs: %w", err)
		}
		defer f.Close() // the child holds its own descriptor
		fmt.Fprintf(f, "=== %s started %s\n", d.kind, time.Now().UTC().Format(time.RFC3339Nano))
		d.cmd.Stdout, d.cmd.Stderr = f, f
	}
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		return err
	}
	d.exited = make(chan struct{})
	go func() { _ = d.cmd.Wait(); close(d.exited) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := d.buildctl(ctx, "debug", "workers"); err == nil {
			return nil
		} else if time.Now().After(deadline) || ctx.Err() != nil {
			d.stop()
			return fmt.Errorf("%s did not answer: %v\n%s", d.kind, err, d.logTail())
		}
		select {
		case <-d.exited:
			return fmt.Errorf("%s exited:\n%s", d.kind, d.logTail())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stop terminates the daemon (SIGTERM, SIGKILL after 30 s) and unmounts
// what it left mounted under its root.
func (d *daemon) stop() {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.exited
	}
	d.cmd = nil
	testutil.UnmountUnder(d.root)
}

// remove stops the daemon and deletes its state.
func (d *daemon) remove() {
	d.stop()
	testutil.UnmountUnder(d.root)
	_ = os.RemoveAll(d.root)
	_ = os.RemoveAll(d.sockDir)
}

// peakRSS returns the daemon's VmHWM (peak resident set) in bytes.
func (d *daemon) peakRSS() (int64, error) {
	return vmHWM(d.cmd.Process.Pid)
}

// buildctl runs buildctl against the daemon and returns its combined
// output.
func (d *daemon) buildctl(ctx context.Context, args ...string) ([]byte, error) {
	args = append([]string{"--addr", d.addr}, args...)
	out, err := exec.CommandContext(ctx, d.buildctlBin, args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("buildctl %s: %v\n%s", strings.Join(args, " "), err, tail(string(out), 30))
	}
	return out, nil
}

// prune removes the daemon's whole build cache, or with keepContext all
// but the snapshots of the build context (the local sources): the next
// build then transfers only what changed in the context, but runs every
// step and computes every blob again.
func (d *daemon) prune(ctx context.Context, keepContext bool) error {
	args := []string{"prune", "--all"}
	if keepContext {
		args = append(args, "--filter", "type!=source.local")
	}
	_, err := d.buildctl(ctx, args...)
	return err
}

// buildTimes are the durations of one build read from its rawjson
// progress, and the daemon's CPU time.
type buildTimes struct {
	Wall     time.Duration // buildctl, start to exit
	Layers   time.Duration // the "exporting layers" status
	Exporter time.Duration // the exporter's vertex ("exporting to ...")
	Tarball  time.Duration // the "sending tarball" status
	Push     time.Duration // "pushing layers" and "pushing manifest ..." statuses, first start to last end
	Compress int           // lade's "compressing layer N" statuses
	PeakRSS  int64
	// PeakAnon is the highest sampled RssAnon of the build; ExporterRSS
	// the highest sampled RssAnon+RssFile in the exporter's window (rss.go).
	PeakAnon, ExporterRSS int64
	// DaemonCPU is the CPU time the daemon used during the build (the
	// context transfer, the build steps and the export).
	DaemonCPU time.Duration
	// ExportCPU is the daemon's CPU time in the exporter vertex's window,
	// LayersCPU in the "exporting layers" status's.
	ExportCPU, LayersCPU time.Duration
	// Stages splits the export's CPU by the daemon's CPU profiles.
	Stages [nStages]time.Duration
	// BlobBytes is the total size of the image's layer blobs (0 when the
	// case does not push nor write a tar).
	BlobBytes int64
	// OtherCPU is the CPU time of every other process on the machine
	// during the build (not the daemon, not buildctl): the noise.
	OtherCPU time.Duration

	// exporterStart and exporterEnd bound the exporter vertex, layersStart
	// and layersEnd the "exporting layers" status.
	exporterStart, exporterEnd, layersStart, layersEnd time.Time
}

// build runs a Dockerfile build of the context with rawjson progress and
// returns the exporter's durations and the daemon's CPU time, in the
// export's window and by stage when stages is true.
// The progress is kept in logFile when it is not empty.
func (d *daemon) build(ctx context.Context, contextDir, logFile string, stages bool, args ...string) (buildTimes, error) {
	all := append([]string{"--addr", d.addr, "build", "--progress", "rawjson", "--frontend", "dockerfile.v0",
		"--local", "context=" + contextDir, "--local", "dockerfile=" + contextDir}, args...)
	cmd := exec.CommandContext(ctx, d.buildctlBin, all...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	pid := d.cmd.Process.Pid
	busy0, own0 := systemBusy(), procCPU(pid)
	sampler := startCPUSampler(pid)
	watched := make(chan progressWatch, 1)
	go func() { watched <- d.watchProgress(ctx, pr, stages) }()
	var profiled chan error
	if d.profileTo != "" {
		profiled = make(chan error, 1)
		go func() { profiled <- fetchDebug(ctx, d.debugAddr, "profile", d.profileTo, d.profileSeconds) }()
	}
	start := time.Now()
	err := cmd.Run()
	t := buildTimes{Wall: time.Since(start)}
	if profiled != nil {
		if perr := <-profiled; perr != nil && err == nil {
			err = perr
		}
	}
	busy1, own1 := systemBusy(), procCPU(pid)
	pw.Close()
	wr := <-watched
	samples := sampler.finish()
	t.DaemonCPU = own1 - own0
	if cmd.ProcessState != nil {
		t.OtherCPU = max(0, busy1-busy0-t.DaemonCPU-cmd.ProcessState.UserTime()-cmd.ProcessState.SystemTime())
	}
	if err != nil {
		return t, fmt.Errorf("%s: buildctl %s: %v\n%s\ndaemon log:\n%s", d.kind, strings.Join(args, " "), err, tail(wr.out.String(), 20), d.logTail())
	}
	if wr.err != nil {
		return t, fmt.Errorf("%s: %w", d.kind, wr.err)
	}
	if logFile != "" {
		if err := os.WriteFile(logFile, wr.out.Bytes(), 0o644); err != nil {
			return t, err
		}
	}
	if err := t.parse(wr.out.Bytes()); err != nil {
		return t, fmt.Errorf("%s: %w", d.kind, err)
	}
	t.ExportCPU = cpuBetween(samples, t.exporterStart, t.exporterEnd)
	t.LayersCPU = cpuBetween(samples, t.layersStart, t.layersEnd)
	t.PeakAnon, t.ExporterRSS = rssPeaks(samples, t.exporterStart, t.exporterEnd)
	t.Stages = wr.stages
	if logFile != "" {
		err = writeSeries(strings.TrimSuffix(logFile, ".rawjson")+".rss.tsv", start, samples, t)
	}
	return t, err
}

// progressWatch is what watchProgress saw.
type progressWatch struct {
	out    bytes.Buffer
	stages [nStages]time.Duration
	err    error
}

// watchProgress reads buildctl's output until EOF and, when stages is
// true, profiles the daemon's CPU from the moment the progress shows the
// exporter vertex started until it shows it completed.
func (d *daemon) watchProgress(ctx context.Context, r io.Reader, stages bool) progressWatch {
	var w progressWatch
	var stopProfile context.CancelFunc
	profiled := make(chan struct{})
	var traced chan error
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		w.out.Write(line)
		w.out.WriteByte('\n')
		if (!stages && d.traceTo == "") || !bytes.Contains(line, []byte(`"exporting to `)) {
			continue
		}
		var st client.SolveStatus
		if json.Unmarshal(line, &st) != nil {
			continue
		}
		for _, v := range st.Vertexes {
			if !strings.HasPrefix(v.Name, "exporting to ") {
				continue
			}
			if v.Started != nil && d.traceTo != "" && traced == nil {
				traced = make(chan error, 1)
				go func(file string) { traced <- traceExport(ctx, d.debugAddr, file, d.traceSeconds) }(d.traceTo)
			}
			if !stages {
				continue
			}
			if v.Started != nil && stopProfile == nil {
				var pctx context.Context
				pctx, stopProfile = context.WithCancel(ctx)
				go func() {
					defer close(profiled)
					w.stages, w.err = profileStages(pctx, d.debugAddr)
				}()
			}
			if v.Completed != nil && stopProfile != nil {
				stopProfile()
			}
		}
	}
	_, _ = io.Copy(io.Discard, r)
	if stopProfile != nil {
		stopProfile()
		<-profiled
	}
	if traced != nil {
		if err := <-traced; err != nil && w.err == nil {
			w.err = err
		}
	}
	return w
}

// parse reads buildctl's rawjson progress.
func (t *buildTimes) parse(out []byte) error {
	type span struct{ start, end time.Time }
	statuses := map[string]*span{}
	vertexes := map[string]*span{}
	widen := func(m map[string]*span, key string, s, c *time.Time) {
		sp := m[key]
		if sp == nil {
			sp = &span{}
			m[key] = sp
		}
		if s != nil && (sp.start.IsZero() || s.Before(sp.start)) {
			sp.start = *s
		}
		if c != nil && c.After(sp.end) {
			sp.end = *c
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var st client.SolveStatus
		if err := json.Unmarshal(line, &st); err != nil {
			return fmt.Errorf("rawjson: %w", err)
		}
		for _, v := range st.Vertexes {
			if strings.HasPrefix(v.Name, "exporting to ") {
				widen(vertexes, "exporter", v.Started, v.Completed)
			}
		}
		for _, s := range st.Statuses {
			switch {
			case s.ID == "exporting layers":
				widen(statuses, "layers", s.Started, s.Completed)
			case s.ID == "sending tarball":
				widen(statuses, "tarball", s.Started, s.Completed)
			case s.ID == "pushing layers" || strings.HasPrefix(s.ID, "pushing manifest"):
				widen(statuses, "push", s.Started, s.Completed)
			case strings.HasPrefix(s.ID, "compressing layer "):
				widen(statuses, s.ID, s.Started, s.Completed)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	dur := func(sp *span) time.Duration {
		if sp == nil || sp.start.IsZero() || sp.end.IsZero() {
			return 0
		}
		return sp.end.Sub(sp.start)
	}
	if statuses["layers"] == nil || vertexes["exporter"] == nil {
		return fmt.Errorf("no \"exporting layers\" status or exporter vertex in the progress:\n%s", tail(string(out), 10))
	}
	t.Layers, t.Exporter = dur(statuses["layers"]), dur(vertexes["exporter"])
	t.layersStart, t.layersEnd = statuses["layers"].start, statuses["layers"].end
	t.exporterStart, t.exporterEnd = vertexes["exporter"].start, vertexes["exporter"].end
	t.Tarball, t.Push = dur(statuses["tarball"]), dur(statuses["push"])
	for k := range statuses {
		if strings.HasPrefix(k, "compressing layer ") {
			t.Compress++
		}
	}
	return nil
}

// logTail returns the end of the daemon's output, or where it is.
func (d *daemon) logTail() string {
	if d.logDir != "" {
		return "(the daemon's output is in " + filepath.Join(d.logDir, d.kind+".log") + ")"
	}
	d.logMu.Lock()
	defer d.logMu.Unlock()
	return tail(d.log.String(), 30)
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// lockedWriter serializes writes to a buffer.
type lockedWriter struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.b.Len() > 4<<20 {
		w.b.Reset()
	}
	return w.b.Write(p)
}

// waitIdle waits until the daemon uses less than a tenth of a core over
// 200 ms, at most max, and returns how long it waited.
func (d *daemon) waitIdle(max time.Duration) time.Duration {
	const tick = 200 * time.Millisecond
	start := time.Now()
	pid := d.cmd.Process.Pid
	last := procCPU(pid)
	for time.Since(start) < max {
		time.Sleep(tick)
		now := procCPU(pid)
		if now-last < tick/10 {
			break
		}
		last = now
	}
	return time.Since(start)
}
