// Command bench compares lade-buildkitd's exporters with stock buildkitd
// v0.34.2 on one workload (issue #5, "Performance"), measures the hardware
// floor of the same layers in-process, and measures the lade CLI's memory
// growth with layer size and its warm re-export.
//
// It must run as root (the daemons mount snapshots and run runc). Usage:
//
//	go run ./hack/bench [--scale 0.25] [--rounds 3] [--cases gzip,zstd,...]
//
// See docs/performance.md for the method and the last numbers.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// config are the command-line settings.
type config struct {
	scale       float64
	rounds      int
	work        string
	cases       []string
	push        bool
	floors      bool
	ladeCLI     bool
	bigMiB      int
	warmMiB     int
	warmN       int
	keepData    bool
	floorReps   int
	keepContext bool
	stages      bool
	traceDir    string
	traceSecs   int
	profileDir  string
	profileSecs int
	logDir      string
}

// allCases are the daemon cases in the order they run.
var allCases = []string{"gzip", "gzip1", "zstd", "uncompressed", "multi", "oci", "warm", "run", "run-zstd", "run-uncompressed"}

func main() {
	var cfg config
	var cases string
	flag.Float64Var(&cfg.scale, "scale", 1, "workload size: 1 is the issue's 536 MB of layers (Go tree, 256 MiB random, 20,000 small files); 0.25 for a quick run")
	flag.IntVar(&cfg.rounds, "rounds", 3, "rounds per case (stock and lade alternate in each round)")
	flag.StringVar(&cfg.work, "work", "/var/tmp/lade-bench", "work directory (binaries, build context, daemon roots); the context is reused when the scale matches")
	flag.StringVar(&cases, "cases", strings.Join(allCases, ","), "daemon cases to run, comma-separated: "+strings.Join(allCases, ",")+"; empty for none")
	flag.BoolVar(&cfg.push, "push", true, "type=image cases push to a local docker-registry (else they only write the daemon's content store)")
	flag.BoolVar(&cfg.floors, "floors", true, "measure the in-process floors")
	flag.BoolVar(&cfg.keepContext, "keep-context", true, "cold builds prune everything but the build context's snapshot (buildctl prune --all --filter type!=source.local), so the context is not sent again; false: prune --all")
	flag.BoolVar(&cfg.stages, "stages", true, "split each export's daemon CPU into tar, hash, compress, write and other with back-to-back 1 s CPU profiles from the daemon's --debugaddr")
	flag.StringVar(&cfg.traceDir, "trace", "", "write a Go execution trace of each daemon's measured exports to DIR/CASE-ROUND-DAEMON.trace (from the exporter's start, --trace-seconds long); read them with go tool trace")
	flag.IntVar(&cfg.traceSecs, "trace-seconds", 5, "length of each --trace execution trace")
	flag.StringVar(&cfg.profileDir, "build-profile", "", "write a CPU profile of each daemon's measured builds, from the build's start (--build-profile-seconds long), to DIR/CASE-ROUND-DAEMON.pprof: where the whole build's daemon CPU goes (needs --stages=false: a Go process takes one CPU profile at a time)")
	flag.StringVar(&cfg.logDir, "daemon-logs", "", "append each daemon's output to DIR/DAEMON.log (run the bench with GODEBUG=gctrace=1 to get the daemons' GC traces there)")
	flag.IntVar(&cfg.profileSecs, "build-profile-seconds", 15, "length of each --build-profile CPU profile")
	flag.IntVar(&cfg.floorReps, "floor-reps", 3, "repetitions of each floor stage (the fastest counts)")
	flag.BoolVar(&cfg.ladeCLI, "lade-cli", true, "measure lade export: RSS growth with layer size, warm re-export")
	flag.IntVar(&cfg.bigMiB, "big-mib", 4096, "size of the large layer of the lade export RSS test (the small one is 64 MiB)")
	flag.IntVar(&cfg.warmMiB, "warm-mib", 1024, "size of the image of the lade export warm re-export test")
	flag.IntVar(&cfg.warmN, "warm-layers", 10, "layers of the image of the lade export warm re-export test")
	flag.BoolVar(&cfg.keepData, "keep", false, "keep the generated lade export data (GiBs) in the work directory")
	flag.Parse()
	for _, c := range strings.Split(cases, ",") {
		if c = strings.TrimSpace(c); c == "" {
			continue
		}
		if !slices.Contains(allCases, c) {
			fatalf("unknown case %q: use %s", c, strings.Join(allCases, ","))
		}
		cfg.cases = append(cfg.cases, c)
	}
	for flagName, dir := range map[string]string{"--trace": cfg.traceDir, "--build-profile": cfg.profileDir, "--daemon-logs": cfg.logDir} {
		if dir == "" {
			continue
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			fatalf("%s: %v", flagName, err)
		}
	}
	if cfg.profileDir != "" && cfg.stages {
		fatalf("--build-profile needs --stages=false: the stage profiles and the build's profile cannot run at once in the daemon")
	}
	if cfg.scale <= 0 || cfg.rounds < 1 {
		fatalf("--scale must be > 0 and --rounds >= 1")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		fatalf("%v", err)
	}
}

func run(ctx context.Context, cfg config) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("run as root: the daemons mount snapshots and run runc")
	}
	for _, tool := range []string{"runc", "docker-registry"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not installed: run hack/install-test-deps.sh", tool)
		}
	}
	start := time.Now()
	if err := os.MkdirAll(cfg.work, 0o755); err != nil {
		return err
	}
	bin := filepath.Join(cfg.work, "bin")
	logf("building lade-buildkitd, lade, stock buildkitd and buildctl v0.34.2 into %s", bin)
	if err := buildBinaries(ctx, bin); err != nil {
		return err
	}
	var rep report
	rep.cfg = cfg
	if len(cfg.cases) > 0 || cfg.floors {
		w, err := prepareWorkload(filepath.Join(cfg.work, "context"), cfg.scale)
		if err != nil {
			return err
		}
		rep.workload = w
		if cfg.floors {
			logf("measuring floors in-process on the same layers")
			if rep.floors, err = measureFloors(w, cfg.floorReps); err != nil {
				return err
			}
		}
		if len(cfg.cases) > 0 {
			if rep.cases, err = runDaemonCases(ctx, cfg, bin, w, &rep); err != nil {
				return err
			}
		}
	}
	if cfg.ladeCLI {
		var err error
		if rep.cli, err = runLadeCLI(ctx, cfg, filepath.Join(bin, "lade")); err != nil {
			return err
		}
	}
	rep.took = time.Since(start)
	rep.print(os.Stdout)
	return nil
}

// logf prints a progress line to stderr.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench %s: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	os.Exit(1)
}

// buildBinaries builds the daemons, buildctl and lade from the module,
// lade's with the native encoders (-tags native: libdeflate and ISA-L for
// gzip, libzstd for zstd; LADE_CODECS=go picks the pure-Go ones).
func buildBinaries(ctx context.Context, dir string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", "native", "-o", dir+"/",
		"github.com/lade-build/lade/cmd/lade-buildkitd",
		"github.com/lade-build/lade/cmd/lade",
		"github.com/moby/buildkit/cmd/buildctl",
		"github.com/moby/buildkit/cmd/buildkitd")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	return dropPageCache(dir, "lade-buildkitd", "buildkitd", "buildctl", "lade")
}
