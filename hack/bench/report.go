package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// report is everything the bench measured.
type report struct {
	cfg      config
	workload *workload
	floors   *floors
	cases    []*caseResult
	cli      *cliResult
	took     time.Duration
	// diskRate is the roots' file system's write rate in bytes per second
	// (diskRate in rootsfs.go) and diskCPU the CPU seconds the writer
	// spends per byte; 0 when not measured.
	diskRate, diskCPU float64
}

// targets of issue #17: the highest lade/stock ratio of "exporting layers"
// (and of the exporter end to end for oci) per case.
var targets = map[string]float64{
	"gzip": 0.2, "gzip1": 0.12, "zstd": 0.45, "uncompressed": 0.5, "multi": 0.25, "oci": 0.25,
}

// cpuTargets are issue #17's highest lade/stock ratios of the daemon's CPU
// in the exporter step ("export CPU"): the targets are for the cold
// export, and its figures of the daemon's CPU beside its exporter times are
// the exporter step's. The whole build's CPU is reported beside them; most
// of the rest of the build is BuildKit's COPY, the same code in both.
var cpuTargets = map[string]float64{"gzip": 0.4, "zstd": 0.7, "uncompressed": 0.8}

// spread is min, median and max of a metric.
type spread struct{ min, med, max float64 }

func spreadOf(v []float64) spread {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return spread{}
	}
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return spread{s[0], med, s[len(s)-1]}
}

func (s spread) String(unit string, prec int) string {
	return fmt.Sprintf("%.*f / %.*f / %.*f%s", prec, s.min, prec, s.med, prec, s.max, unit)
}

// metric extracts one number from a build.
type metric struct {
	name string
	unit string
	prec int
	get  func(buildTimes) float64
}

var (
	mLayers    = metric{"exporting layers", " s", 3, func(t buildTimes) float64 { return t.Layers.Seconds() }}
	mExporter  = metric{"exporter (vertex)", " s", 3, func(t buildTimes) float64 { return t.Exporter.Seconds() }}
	mTarball   = metric{"sending tarball", " s", 3, func(t buildTimes) float64 { return t.Tarball.Seconds() }}
	mWall      = metric{"buildctl wall", " s", 2, func(t buildTimes) float64 { return t.Wall.Seconds() }}
	mRSS       = metric{"peak RSS (VmHWM)", " MiB", 0, func(t buildTimes) float64 { return float64(t.PeakRSS) / (1 << 20) }}
	mAnon      = metric{"peak anon RSS (sampled)", " MiB", 0, func(t buildTimes) float64 { return float64(t.PeakAnon) / (1 << 20) }}
	mExpRSS    = metric{"peak RSS, exporter (sampled)", " MiB", 0, func(t buildTimes) float64 { return float64(t.ExporterRSS) / (1 << 20) }}
	mCPU       = metric{"daemon CPU (build)", " s", 2, func(t buildTimes) float64 { return t.DaemonCPU.Seconds() }}
	mOther     = metric{"others' CPU", " s", 2, func(t buildTimes) float64 { return t.OtherCPU.Seconds() }}
	mExportCPU = metric{"export CPU", " s", 2, func(t buildTimes) float64 { return t.ExportCPU.Seconds() }}
	mLayersCPU = metric{"layers CPU", " s", 2, func(t buildTimes) float64 { return t.LayersCPU.Seconds() }}
	mBlob      = metric{"layer blob bytes", " MB", 1, func(t buildTimes) float64 { return float64(t.BlobBytes) / 1e6 }}
	mLayersMs  = metric{"exporting layers", " ms", 1, func(t buildTimes) float64 { return float64(t.Layers.Microseconds()) / 1000 }}
	mExpMs     = metric{"exporter (vertex)", " ms", 1, func(t buildTimes) float64 { return float64(t.Exporter.Microseconds()) / 1000 }}
)

// metricsOf lists the metrics shown for a case; the first is the one the
// target applies to.
func metricsOf(c *caseResult) []metric {
	switch c.name {
	case "oci":
		return append([]metric{mExporter, mLayers, mTarball, mWall, mRSS, mAnon, mExpRSS, mCPU, mExportCPU, mLayersCPU}, append(stageMetrics(), mBlob, mOther)...)
	case "warm":
		return []metric{mLayersMs, mExpMs, mWall, mRSS, mExportCPU}
	}
	return append([]metric{mLayers, mExporter, mWall, mRSS, mAnon, mExpRSS, mCPU, mExportCPU, mLayersCPU}, append(stageMetrics(), mBlob, mOther)...)
}

// stageMetrics are the export's CPU by stage.
func stageMetrics() []metric {
	var ms []metric
	for i, name := range stageNames {
		ms = append(ms, metric{"  CPU " + name, " s", 2, func(t buildTimes) float64 { return t.Stages[i].Seconds() }})
	}
	return ms
}

func (c *caseResult) values(kind string, m metric) []float64 {
	var out []float64
	for _, t := range c.runs[kind] {
		out = append(out, m.get(t))
	}
	return out
}

func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "\n== lade-buildkitd vs stock buildkitd v0.34.2 ==\n")
	fmt.Fprintf(w, "machine: %s\n", machine())
	if r.workload != nil {
		var parts []string
		for _, p := range r.workload.Parts {
			parts = append(parts, fmt.Sprintf("%s %.1f MB/%d files", p.Name, float64(p.Bytes)/1e6, p.Files))
		}
		fmt.Fprintf(w, "workload: scale %g, %.0f MB of files (%s) + an empty RUN; %d rounds, stock and lade alternating\n",
			r.workload.Scale, float64(r.workload.Bytes())/1e6, strings.Join(parts, ", "), r.cfg.rounds)
	}
	if len(r.cases) > 0 {
		fmt.Fprintf(w, "\n%-13s %-18s %-30s %-30s %-8s %s\n", "case", "metric", "stock min/median/max", "lade min/median/max", "lade/stock", "target")
		for _, c := range r.cases {
			for n, m := range metricsOf(c) {
				s, l := spreadOf(c.values(stock, m)), spreadOf(c.values(lade, m))
				ratio := "-"
				if s.med > 0 {
					ratio = fmt.Sprintf("%.2f", l.med/s.med)
				}
				target := ""
				if t, ok := targets[c.name]; ok && n == 0 {
					target = fmt.Sprintf("<= %.2f %s", t, yesNo(s.med > 0 && l.med/s.med <= t))
				}
				if c.name == "warm" && n == 1 {
					target = fmt.Sprintf("< 200 ms %s", yesNo(l.max < 200))
				}
				if m.name == mRSS.name || m.name == mExportCPU.name && c.name != "warm" {
					target = "<= stock " + yesNo(l.med <= s.med)
				}
				if t, ok := cpuTargets[c.name]; ok && m.name == mExportCPU.name {
					target = fmt.Sprintf("<= %.2f %s", t, yesNo(s.med > 0 && l.med/s.med <= t))
				}
				fmt.Fprintf(w, "%-13s %-18s %-30s %-30s %-8s   %s\n", c.name, m.name, s.String(m.unit, m.prec), l.String(m.unit, m.prec), ratio, target)
			}
		}
	}
	r.printFloors(w)
	r.printCLI(w)
	fmt.Fprintf(w, "\nbench took %s\n", r.took.Round(time.Second))
}

// floorTarget is issue #17's highest ratio of lade's "exporting layers" to
// the floor, for the cases whose ratio to stock is below the floor.
const floorTarget = 1.2

// printFloors prints the floors and lade's "exporting layers" against them.
func (r *report) printFloors(w io.Writer) {
	f := r.floors
	if f == nil {
		return
	}
	fmt.Fprintf(w, "\nfloors (in-process, CPU seconds / 2 cores) on %.0f MB of layer tar:\n", float64(f.TarBytes)/1e6)
	fmt.Fprintf(w, "  tar generation %.3fs CPU, sha256 %.3fs CPU per pass\n", f.Tar.Seconds(), f.SHA.Seconds())
	for _, st := range []struct {
		name string
		s    stage
	}{
		{"pgzip-6 (pure Go)", f.Gzip}, {"lade gzip " + f.GzipCodec, f.GzipLade},
		{"lade gzip level 1 " + f.Gzip1Codec, f.Gzip1}, {"zstd-1", f.Zstd},
	} {
		fmt.Fprintf(w, "  %-34s %.3fs CPU (%.3fs wall), %.1f MB out\n", st.name, st.s.CPU.Seconds(), st.s.Wall.Seconds(), float64(st.s.Out)/1e6)
	}
	fmt.Fprintf(w, "  gzip floor with pgzip-6 (blobs larger than stock's): %.3fs\n", f.PgzipFor().Seconds())
	fmt.Fprintf(w, "  stream (lade gzip blobs to a file through a client session tunnelled in Control.Session, as buildctl to lade-buildkitd) %.3fs CPU; the oci case's floor adds it\n", f.Stream.Seconds())
	fmt.Fprintf(w, "  stream over one gRPC connection (no tunnel, for reference) %.3fs CPU\n", f.StreamDirect.Seconds())
	if r.diskRate > 0 {
		fmt.Fprintf(w, "  write: %.3fs CPU per GB written and fsynced on the roots' file system; a case's CPU floor adds it for lade's blob bytes\n", r.diskCPU*1e9)
		fmt.Fprintf(w, "  disk: the roots' file system writes %.0f MB/s; a case's floor is the larger of its CPU floor and its lade blob bytes at that rate\n", r.diskRate/1e6)
	}
	fmt.Fprintf(w, "%-13s %-12s %-12s %-22s %-10s %-14s %s\n", "case", "CPU floor", "disk floor", "lade exporting layers", "lade/floor", fmt.Sprintf("target <= %.1f", floorTarget), "layers lade compressed")
	for _, c := range r.cases {
		// The two platforms' COPY layers are the same refs in BuildKit (the
		// context does not depend on the platform), so each blob is
		// computed once and the floor is the single platform's.
		fl := f.ForCase(c.name, c.compression, c.level)
		if fl == 0 || c.name == "warm" || caseSpecs[c.name].dockerfile != "" { // the floors are of the COPY workload
			continue
		}
		l := spreadOf(c.values(lade, mLayers))
		n := spreadOf(c.values(lade, metric{get: func(t buildTimes) float64 { return float64(t.Compress) }}))
		disk, blobBytes := 0.0, spreadOf(c.values(lade, mBlob)).med*1e6
		if r.diskRate > 0 {
			disk = blobBytes / r.diskRate
		}
		cpuFloor := fl.Seconds() + blobBytes*r.diskCPU/floorCores
		floor := max(cpuFloor, disk)
		fmt.Fprintf(w, "%-13s %-12s %-12s %-22s %-10.2f %-14s %.0f\n", c.name, fmt.Sprintf("%.3fs", cpuFloor), fmt.Sprintf("%.3fs", disk), fmt.Sprintf("%.3fs", l.med),
			l.med/floor, yesNo(l.med/floor <= floorTarget), n.med)
	}
	if len(r.cases) == 0 {
		for _, c := range []string{"gzip", "zstd", "uncompressed"} {
			fmt.Fprintf(w, "%-13s %.3fs\n", c, f.For(c, 0).Seconds())
		}
	}
}

// printCLI prints the lade export measurements.
func (r *report) printCLI(w io.Writer) {
	c := r.cli
	if c == nil {
		return
	}
	fmt.Fprintf(w, "\n== lade export (CLI, embedded store) ==\n")
	fmt.Fprintf(w, "%-12s %-22s %-22s %-10s %s\n", "compression", fmt.Sprintf("%d MiB layer", c.smallMiB), fmt.Sprintf("%d MiB layer", c.bigMiB), "growth", "target < 128 MiB")
	for _, comp := range cliCompressions {
		rss, took := c.rss[comp], c.took[comp]
		growth := rss[1] - rss[0]
		fmt.Fprintf(w, "%-12s %-22s %-22s %-10s %s\n", comp,
			fmt.Sprintf("%d MiB RSS, %.1fs", rss[0]>>20, took[0].Seconds()),
			fmt.Sprintf("%d MiB RSS, %.1fs", rss[1]>>20, took[1].Seconds()),
			fmt.Sprintf("%d MiB", growth>>20), yesNo(growth < 128<<20))
	}
	var runs []float64
	for _, d := range c.warmRuns {
		runs = append(runs, float64(d.Microseconds())/1000)
	}
	s := spreadOf(runs)
	allReused := c.warmStatuses["reused"] == c.warmN && len(c.warmStatuses) == 1
	fmt.Fprintf(w, "warm re-export, %d layers, %d MiB: cold %.2fs; warm (process wall, %d runs) %s; layer statuses %v; < 200 ms %s, no layer data read %s\n",
		c.warmN, c.warmMiB, c.warmCold.Seconds(), len(runs), s.String(" ms", 1), c.warmStatuses, yesNo(s.max < 200), yesNo(allReused))
}

func yesNo(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// machine describes the CPU, core count and kernel.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel := ""
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = "Linux " + strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("%d cores (%s), %s, %s", runtime.NumCPU(), model, kernel, runtime.Version())
}
