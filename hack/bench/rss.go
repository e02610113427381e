package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

// Resident memory split (issue #17). VmHWM, the peak RSS the report
// judges, counts the daemon's anonymous memory (Go heap, stacks, C and
// mmap'd buffers) and the file pages it maps (its binary's code and data,
// shared libraries, bbolt's mapped databases), at the one moment their sum
// was highest, which may be during the build's steps rather than the
// export. The sampler (cpu.go) also records RssAnon and RssFile, so the
// report can show the peak of anonymous memory alone over the build, and
// the peak RSS within the exporter's window; with --rss-smaps it writes
// the daemon's memory map at its peak (rsspeak.go).

// procRSS returns the RssAnon and RssFile of process pid in bytes, or
// zeros when they cannot be read.
func procRSS(pid int) (anon, file int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	if *rssSmapsDir != "" {
		if err := notePeak(*rssSmapsDir, pid, b); err != nil {
			smapsErr.Do(func() { logf("--rss-smaps: %v", err) })
		}
	}
	return statusField(b, "RssAnon:"), statusField(b, "RssFile:")
}

// smapsErr reports the first --rss-smaps error only.
var smapsErr sync.Once

// statusKB parses a /proc status value such as "  1234 kB" into bytes.
func statusKB(v []byte) int64 {
	n, _ := strconv.ParseInt(string(bytes.TrimSuffix(bytes.TrimSpace(v), []byte(" kB"))), 10, 64)
	return n << 10
}

// rssPeaks returns the highest sampled RssAnon over all samples, and the
// highest sampled RssAnon+RssFile between from and to (0 when no sample
// falls in that window).
func rssPeaks(samples []cpuSample, from, to time.Time) (anon, window int64) {
	for _, s := range samples {
		anon = max(anon, s.anon)
		if !from.IsZero() && !s.at.Before(from) && !s.at.After(to) {
			window = max(window, s.anon+s.file)
		}
	}
	return anon, window
}

// writeSeries writes the build's samples to path, one line each: seconds
// since the build's start, the phase ("build", "export" in the exporter's
// window, "layers" in the "exporting layers" status's), RssAnon and
// RssFile in KiB, and the daemon's CPU seconds so far. It shows when a
// peak happens, which the report's maxima do not.
func writeSeries(path string, start time.Time, samples []cpuSample, t buildTimes) error {
	var b bytes.Buffer
	b.WriteString("seconds\tphase\tanon_kib\tfile_kib\tcpu_s\n")
	within := func(at, from, to time.Time) bool { return !from.IsZero() && !at.Before(from) && !at.After(to) }
	for _, s := range samples {
		phase := "build"
		switch {
		case within(s.at, t.layersStart, t.layersEnd):
			phase = "layers"
		case within(s.at, t.exporterStart, t.exporterEnd):
			phase = "export"
		}
		fmt.Fprintf(&b, "%.3f\t%s\t%d\t%d\t%.3f\n", s.at.Sub(start).Seconds(), phase, s.anon>>10, s.file>>10, s.cpu.Seconds())
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}
