package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/pprof/profile"
)

// CPU accounting of one build (issue #17): the daemon's CPU time in the
// exporter's window, from /proc/PID/stat sampled every cpuSampleEvery, and
// the same window split into stages from CPU profiles the daemon serves on
// its --debugaddr (both buildkitd and lade-buildkitd serve Go's pprof).

// cpuSampleEvery is the sampling period of the daemon's CPU time. The
// kernel counts it in 10 ms ticks, so a window's CPU is exact to about
// two ticks per core plus the CPU of one period at each end.
const cpuSampleEvery = 20 * time.Millisecond

// cpuSample is the daemon's cumulated CPU time at a moment.
type cpuSample struct {
	at         time.Time
	cpu        time.Duration
	anon, file int64 // RssAnon and RssFile in bytes (rss.go)
}

// cpuSampler records the CPU time of a process until stopped.
type cpuSampler struct {
	mu      sync.Mutex
	samples []cpuSample
	stop    chan struct{}
	done    chan struct{}
}

func startCPUSampler(pid int) *cpuSampler {
	s := &cpuSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(cpuSampleEvery)
		defer tick.Stop()
		for {
			s.mu.Lock()
			anon, file := procRSS(pid)
			s.samples = append(s.samples, cpuSample{time.Now(), procCPU(pid), anon, file})
			s.mu.Unlock()
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// finish stops the sampler and returns its samples.
func (s *cpuSampler) finish() []cpuSample {
	close(s.stop)
	<-s.done
	return s.samples
}

// cpuBetween returns the CPU time spent between from and to: the
// difference of the last sample at or before from and the first at or
// after to (so the window is never cut short), or 0 when the samples do not
// cover it.
func cpuBetween(samples []cpuSample, from, to time.Time) time.Duration {
	if from.IsZero() || to.IsZero() || len(samples) == 0 || samples[0].at.After(from) {
		return 0
	}
	var start, end *cpuSample
	for i := range samples {
		if !samples[i].at.After(from) {
			start = &samples[i]
		}
		if end == nil && !samples[i].at.Before(to) {
			end = &samples[i]
		}
	}
	if start == nil || end == nil {
		return 0
	}
	return end.cpu - start.cpu
}

// Stages of the export that CPU profiles are split into.
const (
	stageTar      = iota // reading the snapshots and writing the tar (differ, syscalls)
	stageHash            // sha256 of tars and blobs
	stageCompress        // gzip, zstd
	stageWrite           // writing blobs to the content store, and pushing them
	stageOther           // everything else (the runtime, gRPC, the solver...)
	nStages
)

var stageNames = [nStages]string{"tar", "hash", "compress", "write", "other"}

// stageRules map a function name to a stage; the innermost frame of a
// sample that matches a rule decides the sample's stage, so a read(2)
// under os.(*File).Read counts as tar and a write(2) under the content
// writer counts as write.
var stageRules = []struct {
	stage int
	subs  []string
}{
	{stageHash, []string{"sha256"}},
	// C code has no Go frames in a profile (runtime._ExternalCode); in the
	// daemons the only C that runs for long is the native encoders'
	// (libdeflate, ISA-L, libzstd: -tags native).
	{stageCompress, []string{"klauspost/compress", "compress/flate", "compress/gzip", "pargzip", "klauspost/pgzip",
		"internal/libzstd", "internal/libdeflate", "internal/isal", "runtime._ExternalCode"}},
	{stageWrite, []string{"os.(*File).Write", "content/local.", "writeback", "net/http.(*persistConn).write", "remotes/docker"}},
	{stageTar, []string{"archive/tar", "os.(*File).Read", "os.Open", "os.Lstat", "os.(*File).ReadDir", "os.Readlink",
		"overlay.", "continuity/fs", "continuity/sysx", "lade/cache.", "unix.Lgetxattr", "unix.Llistxattr", "golang.org/x/sys/unix.Getdents"}},
}

// stageOf returns the stage of a sample's stack, innermost frame first.
func stageOf(funcs []string) int {
	for _, f := range funcs {
		for _, r := range stageRules {
			for _, sub := range r.subs {
				if strings.Contains(f, sub) {
					return r.stage
				}
			}
		}
	}
	return stageOther
}

// addProfile adds a CPU profile's samples to stages.
func addProfile(stages *[nStages]time.Duration, p *profile.Profile) {
	idx := -1
	for i, st := range p.SampleType {
		if st.Type == "cpu" && st.Unit == "nanoseconds" {
			idx = i
		}
	}
	if idx < 0 {
		return
	}
	var funcs []string
	for _, s := range p.Sample {
		funcs = funcs[:0]
		for _, loc := range s.Location {
			for _, line := range loc.Line {
				if line.Function != nil {
					funcs = append(funcs, line.Function.Name)
				}
			}
		}
		stages[stageOf(funcs)] += time.Duration(s.Value[idx])
	}
}

// profileStages takes back-to-back one-second CPU profiles of the daemon
// at debugAddr until ctx ends, and returns their samples per stage. The
// last profile may run up to a second past ctx's end.
func profileStages(ctx context.Context, debugAddr string) ([nStages]time.Duration, error) {
	var stages [nStages]time.Duration
	hc := &http.Client{Timeout: 10 * time.Second}
	for ctx.Err() == nil {
		resp, err := hc.Get("http://" + debugAddr + "/debug/pprof/profile?seconds=1")
		if err != nil {
			return stages, fmt.Errorf("CPU profile: %w", err)
		}
		p, err := profile.Parse(resp.Body)
		resp.Body.Close()
		if err != nil {
			return stages, fmt.Errorf("CPU profile from %s: %w", debugAddr, err)
		}
		addProfile(&stages, p)
	}
	return stages, nil
}

// stagesString renders the CPU stages, or "-" when not profiled.
func (t buildTimes) stagesString() string {
	var parts []string
	for i, d := range t.Stages {
		if d > 0 {
			parts = append(parts, fmt.Sprintf("%s %.2f", stageNames[i], d.Seconds()))
		}
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// clockTick is the unit of CPU times in /proc (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// procCPU returns the user and system CPU time of process pid (every
// thread), or 0 when it cannot be read.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	// Fields after the command name (which may hold spaces) in parentheses.
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * clockTick
}

// systemBusy returns the CPU time all processors spent not idle.
func systemBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var busy int64
	for i, v := range f[1:9] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		busy += n
	}
	return time.Duration(busy) * clockTick
}
