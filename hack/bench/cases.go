package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// caseResult holds the builds of one case, per daemon kind, in round order.
type caseResult struct {
	name        string
	compression string
	level       int
	platforms   int
	runs        map[string][]buildTimes
}

// caseSpec describes one case: its compression (and level, 0 for the
// default), platforms and whether it is a warm re-export.
type caseSpec struct {
	compression string
	level       int
	platforms   int
	warm        bool
	oci         bool
	dockerfile  string // the context's Dockerfile.NAME to build instead of Dockerfile
}

var caseSpecs = map[string]caseSpec{
	"gzip":         {compression: "gzip", platforms: 1},
	"gzip1":        {compression: "gzip", level: 1, platforms: 1},
	"zstd":         {compression: "zstd", platforms: 1},
	"uncompressed": {compression: "uncompressed", platforms: 1},
	"multi":        {compression: "gzip", platforms: 2},
	"oci":          {compression: "gzip", platforms: 1, oci: true},
	"warm":         {compression: "gzip", platforms: 1, warm: true},
	"run":          {compression: "gzip", platforms: 1, dockerfile: "Dockerfile.run"},
	// The issue measured its RUN-built workload with each codec.
	"run-zstd":         {compression: "zstd", platforms: 1, dockerfile: "Dockerfile.run"},
	"run-uncompressed": {compression: "uncompressed", platforms: 1, dockerfile: "Dockerfile.run"},
}

// runDaemonCases runs every case for cfg.rounds rounds, stock then lade in
// each round (A B A B ...).
func runDaemonCases(ctx context.Context, cfg config, bin string, w *workload, rep *report) ([]*caseResult, error) {
	roots := filepath.Join(cfg.work, "roots")
	unmount, err := mountRoots(cfg.work, roots, cfg.scale)
	if err != nil {
		return nil, err
	}
	defer unmount()
	if rep.diskRate, rep.diskCPU, err = diskRate(roots); err != nil {
		return nil, err
	}
	logf("roots' file system writes %.0f MB/s (1 MiB writes and fsync), %.3f CPU-s per GB written", rep.diskRate/1e6, rep.diskCPU*1e9)
	var ds []*daemon
	for _, kind := range []string{stock, lade} {
		d, err := newDaemon(kind, bin, filepath.Join(roots, kind))
		if err != nil {
			return nil, err
		}
		d.logDir = cfg.logDir
		defer d.remove()
		ds = append(ds, d)
	}
	var reg *registry
	if cfg.push {
		var err error
		if reg, err = startRegistry(filepath.Join(cfg.work, "registry")); err != nil {
			return nil, err
		}
		defer reg.stop()
	}
	out := filepath.Join(cfg.work, "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	defer os.RemoveAll(out)
	logs := filepath.Join(cfg.work, "logs")
	_ = os.RemoveAll(logs)
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return nil, err
	}
	logf("buildctl rawjson progress of each measured build goes to %s", logs)
	if cfg.keepContext {
		for _, d := range ds {
			if err := warmUp(ctx, d, w); err != nil {
				return nil, err
			}
		}
	}
	var results []*caseResult
	for _, name := range cfg.cases {
		spec := caseSpecs[name]
		cr := &caseResult{name: name, compression: spec.compression, level: spec.level, platforms: spec.platforms, runs: map[string][]buildTimes{}}
		for round := 1; round <= cfg.rounds; round++ {
			for _, d := range ds {
				if cfg.traceDir != "" {
					d.traceTo, d.traceSeconds = filepath.Join(cfg.traceDir, fmt.Sprintf("%s-%d-%s.trace", name, round, d.kind)), cfg.traceSecs
				}
				if cfg.profileDir != "" {
					d.profileTo, d.profileSeconds = filepath.Join(cfg.profileDir, fmt.Sprintf("%s-%d-%s.pprof", name, round, d.kind)), cfg.profileSecs
				}
				t, err := runCase(ctx, d, reg, w, name, spec, round, out, logs, cfg.keepContext, cfg.stages)
				if err != nil {
					return nil, fmt.Errorf("case %s round %d: %w", name, round, err)
				}
				logf("%-12s round %d %-15s layers %7.3fs  exporter %7.3fs  tarball %6.3fs  push %6.3fs  wall %6.2fs  RSS %4d MiB (anon %d, exporter %d)  daemon CPU %6.2fs  export CPU %6.2fs (%s)  blobs %.1f MB  others' CPU %6.2fs  lade-compressed %d",
					name, round, d.kind, t.Layers.Seconds(), t.Exporter.Seconds(), t.Tarball.Seconds(), t.Push.Seconds(), t.Wall.Seconds(),
					t.PeakRSS>>20, t.PeakAnon>>20, t.ExporterRSS>>20, t.DaemonCPU.Seconds(), t.ExportCPU.Seconds(), t.stagesString(), float64(t.BlobBytes)/1e6, t.OtherCPU.Seconds(), t.Compress)
				cr.runs[d.kind] = append(cr.runs[d.kind], t)
			}
		}
		results = append(results, cr)
	}
	return results, nil
}

// warmUp sends the build context to d once, in an unmeasured build, so
// that the first measured round, like the others, finds it in the cache
// instead of receiving it (and writing it back to disk) while it is timed.
func warmUp(ctx context.Context, d *daemon, w *workload) error {
	if err := d.start(ctx); err != nil {
		return err
	}
	defer d.stop()
	logf("%s: sending the build context once (unmeasured)", d.kind)
	_, err := d.build(ctx, w.Dir, "", false, "--output", "type=image,name=bench/warmup:latest,compression=uncompressed")
	if err != nil {
		return fmt.Errorf("warm-up build: %w", err)
	}
	return nil
}

// runCase runs one measured build of a case on d: a cold build after
// `buildctl prune --all`, or for warm the second of two identical builds.
// The daemon is restarted right before the measured build and its VmHWM
// read right after it, so the peak RSS is the build's (plus startup).
func runCase(ctx context.Context, d *daemon, reg *registry, w *workload, name string, spec caseSpec, round int, out, logs string, keepContext, stages bool) (buildTimes, error) {
	args := caseArgs(d, reg, name, spec, round, out)
	if err := d.start(ctx); err != nil {
		return buildTimes{}, err
	}
	var err error
	if spec.warm {
		_, err = d.build(ctx, w.Dir, "", false, args...)
	} else {
		err = d.prune(ctx, keepContext)
	}
	d.stop()
	if err != nil {
		return buildTimes{}, err
	}
	if err := startEvicted(ctx, d); err != nil { // dbcache.go
		return buildTimes{}, err
	}
	defer d.stop()
	// Let the daemon's startup work settle (it removes the snapshots the
	// prune released, which can take seconds of CPU), and write back what
	// earlier builds left dirty, so neither overlaps the build.
	unix.Sync()
	time.Sleep(500 * time.Millisecond)
	if waited := d.waitIdle(60 * time.Second); waited > time.Second {
		logf("%s: waited %.1fs for the daemon to go idle", d.kind, waited.Seconds())
	}
	if err := dropDBPageCache(d.root); err != nil { // dbcache.go
		return buildTimes{}, err
	}
	t, err := d.build(ctx, w.Dir, filepath.Join(logs, fmt.Sprintf("%s-%d-%s.rawjson", name, round, d.kind)), stages, args...)
	if err != nil {
		return t, err
	}
	if t.PeakRSS, err = d.peakRSS(); err != nil {
		return t, err
	}
	switch {
	case spec.oci:
		tarball := filepath.Join(out, d.kind+".tar")
		t.BlobBytes, err = ociLayerBytes(tarball)
		_ = os.Remove(tarball)
		return t, err
	case reg != nil && !spec.warm:
		if t.BlobBytes, err = reg.layerBytes(caseRef(reg, name, d, round)); err != nil {
			return t, err
		}
		return t, reg.wipe()
	}
	return t, nil
}

// caseRef is the repository a case's round pushes to.
func caseRef(reg *registry, name string, d *daemon, round int) string {
	return fmt.Sprintf("bench/%s-%s-%d", name, d.kind, round)
}

// caseArgs returns the buildctl flags of a case.
func caseArgs(d *daemon, reg *registry, name string, spec caseSpec, round int, out string) []string {
	var args []string
	if spec.platforms > 1 {
		args = append(args, "--opt", "filename=Dockerfile.multi", "--opt", "platform=linux/amd64,linux/arm64")
	}
	if spec.dockerfile != "" {
		args = append(args, "--opt", "filename="+spec.dockerfile)
	}
	comp := ",compression=" + spec.compression
	if spec.level != 0 {
		comp += fmt.Sprintf(",compression-level=%d", spec.level)
	}
	switch {
	case spec.oci:
		return append(args, "--output", "type=oci,dest="+filepath.Join(out, d.kind+".tar")+",name=bench/oci:latest"+comp)
	case spec.warm || reg == nil:
		return append(args, "--output", "type=image,name=bench/"+name+":latest,oci-mediatypes=true"+comp)
	}
	ref := reg.host + "/" + caseRef(reg, name, d, round) + ":latest"
	return append(args, "--output", "type=image,name="+ref+",push=true,registry.insecure=true,oci-mediatypes=true"+comp)
}
