//go:build integration

package frontendtest

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helpFlag is one flag of a --help listing: its usage line's default and
// environment variable, as printed.
type helpFlag struct {
	def, env string
}

var (
	helpFlagRE    = regexp.MustCompile(`^\s+--([a-z0-9-]+)`)
	helpDefaultRE = regexp.MustCompile(`\(default: ("[^"]*"|[^)]*)\)`)
	helpEnvRE     = regexp.MustCompile(`\[(\$[A-Z0-9_, $]+)\]\s*$`)
)

// helpFlags runs bin --help and parses its flags.
func helpFlags(t *testing.T, bin string) map[string]helpFlag {
	t.Helper()
	out, err := exec.Command(bin, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --help: %v\n%s", bin, err, out)
	}
	flags := map[string]helpFlag{}
	for _, line := range strings.Split(string(out), "\n") {
		m := helpFlagRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		var f helpFlag
		if d := helpDefaultRE.FindStringSubmatch(line); d != nil {
			f.def = d[1]
		}
		if e := helpEnvRE.FindStringSubmatch(line); e != nil {
			f.env = e[1]
		}
		flags[m[1]] = f
	}
	if len(flags) < 10 {
		t.Fatalf("%s --help lists %d flags:\n%s", bin, len(flags), out)
	}
	return flags
}

// TestFlagsMatchStock: lade-buildkitd --help lists every flag of stock
// buildkitd --help (built from the same BuildKit module), with the same
// default and environment variable, so a BuildKit upgrade that adds or
// changes a flag fails here until lade-buildkitd follows.
func TestFlagsMatchStock(t *testing.T) {
	stockFlags := helpFlags(t, filepath.Join(binDir(t), stock))
	ladeFlags := helpFlags(t, filepath.Join(binDir(t), lade))
	var missing, differ []string
	for name, s := range stockFlags {
		l, ok := ladeFlags[name]
		switch {
		case !ok:
			missing = append(missing, "--"+name)
		case l != s:
			differ = append(differ, "--"+name+": stock default "+s.def+" env "+s.env+", lade default "+l.def+" env "+l.env)
		}
	}
	if len(missing) > 0 || len(differ) > 0 {
		t.Fatalf("lade-buildkitd lacks stock flags %v; differs: %v", missing, differ)
	}
	if _, ok := ladeFlags["differ"]; !ok {
		t.Fatal("lade-buildkitd lost its --differ flag")
	}
	t.Logf("%d stock flags, %d lade flags", len(stockFlags), len(ladeFlags))
}

// TestHarnessInvocation: lade-buildkitd starts as BuildKit's integration
// harness (util/testutil/workers, v0.34.2) starts buildkitd for its OCI
// worker — those flags, a config with [otel] and [cdi], its environment
// including BUILDKIT_DEBUG_FORCE_OVERLAY_DIFF=true and a unix debug
// address — builds, keeps lade's differ, and serves the debug address
// (profiles, and the build's metrics at /metrics).
func TestHarnessInvocation(t *testing.T) {
	state := t.TempDir()
	cfg := filepath.Join(state, "buildkitd.toml")
	toml := "[otel]\n  socketPath = \"" + filepath.Join(state, "otel-grpc.sock") + "\"\n[cdi]\n  specDirs = [\"" + filepath.Join(state, "cdi") + "\"]\n"
	if err := os.WriteFile(cfg, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	debugSock := filepath.Join(state, "buildkitd-debug.sock")
	d := startLadeWith(t, ladeRun{
		args: []string{"--oci-worker=true", "--containerd-worker=false", "--oci-worker-gc=false",
			"--oci-worker-labels=org.mobyproject.buildkit.worker.sandbox=true", "--oci-worker-snapshotter=overlayfs",
			"--config=" + cfg, "--debug"},
		env: []string{"BUILDKIT_DEBUG_EXEC_OUTPUT=1", "BUILDKIT_DEBUG_PANIC_ON_ERROR=1",
			"BUILDKITD_DEBUGADDR=unix://" + debugSock, "BUILDKIT_DEBUG_FORCE_OVERLAY_DIFF=true"},
	})
	out, err := runBuildctl(context.Background(), t, d.addr, nil, "debug", "workers", "-v")
	if err != nil || !strings.Contains(out, "org.mobyproject.buildkit.worker.sandbox:\t\ttrue") {
		t.Fatalf("worker labels: %v\n%s", err, out)
	}
	ctx := contextDir(t, mainDockerfile, nil)
	out, err = runBuildctl(context.Background(), t, d.addr, nil, dockerfileBuildArgs(ctx, "--output", "type=oci,dest="+filepath.Join(t.TempDir(), "o.tar"))...)
	if err != nil || !strings.Contains(out, "(lade ") {
		t.Fatalf("build: %v\n%s", err, out)
	}
	if !strings.Contains(d.log.String(), "stays the layer differ") {
		t.Errorf("no note that lade's differ stays:\n%s", d.log.Tail(30))
	}
	curl, err := exec.Command("curl", "-sf", "--unix-socket", debugSock, "http://debug/debug/pprof/").CombinedOutput()
	if err != nil || !strings.Contains(string(curl), "goroutine") {
		t.Errorf("debug address: %v\n%.300s", err, curl)
	}
	metrics, err := exec.Command("curl", "-sf", "--unix-socket", debugSock, "http://debug/metrics").CombinedOutput()
	if err != nil || !strings.Contains(string(metrics), `buildkit_build_duration_seconds_count{`) {
		t.Errorf("debug address /metrics after a build: %v\n%.500s", err, metrics)
	}
	if _, err := os.Stat(filepath.Join(state, "otel-grpc.sock")); err != nil {
		t.Errorf("OTEL trace socket from [otel] socketPath: %v", err)
	}
}

// TestSocketActivation: --addr fd:// serves the socket systemd passes
// (LISTEN_FDS, LISTEN_PID), as buildkitd's socket-activated unit.
func TestSocketActivation(t *testing.T) {
	dir, err := os.MkdirTemp("", "lbk-fd-")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "activated.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := l.File()
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false) // the daemon serves the socket from here on
	_ = l.Close()
	d := &daemon{kind: lade, addr: "unix://" + sock, dir: dir, log: &syncBuffer{}}
	// The shell's pid is the daemon's after exec, as systemd sets it.
	d.cmd = exec.Command("sh", "-c", `LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@"`,
		filepath.Join(binDir(t), lade), "--root", filepath.Join(dir, "root"), "--addr", "fd://")
	d.cmd.ExtraFiles = []*os.File{f} // fd 3, systemd's first
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	t.Cleanup(func() { d.stop(t) })
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := runBuildctl(context.Background(), t, d.addr, nil, "debug", "workers")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("socket-activated lade-buildkitd did not answer: %v\n%s\n%s", err, out, d.log.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	ctx := contextDir(t, mainDockerfile, nil)
	if out, err := runBuildctl(context.Background(), t, d.addr, nil, dockerfileBuildArgs(ctx, "--output", "type=oci,dest="+filepath.Join(t.TempDir(), "o.tar"))...); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
}
