//go:build integration

package frontendtest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lade-build/lade/internal/testutil"
)

// Daemon kinds.
const (
	lade  = "lade-buildkitd"
	stock = "buildkitd"
)

// bins holds the binaries built once for the package.
var bins struct {
	once sync.Once
	dir  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bins.dir != "" {
		_ = os.RemoveAll(bins.dir)
	}
	os.Exit(code)
}

// binDir builds lade-buildkitd and the stock buildctl and buildkitd
// (v0.34.2, from the module) once, and returns their directory.
func binDir(t *testing.T) string {
	t.Helper()
	bins.once.Do(func() {
		if bins.dir, bins.err = os.MkdirTemp("", "lade-frontend-bin-"); bins.err != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", bins.dir+"/",
			"github.com/lade-build/lade/cmd/lade-buildkitd",
			"github.com/moby/buildkit/cmd/buildctl",
			"github.com/moby/buildkit/cmd/buildkitd")
		if out, err := cmd.CombinedOutput(); err != nil {
			bins.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if bins.err != nil {
		t.Fatal(bins.err)
	}
	return bins.dir
}

// daemon is a running build daemon with its own root and socket.
type daemon struct {
	kind string
	addr string
	dir  string
	cmd  *exec.Cmd
	log  *syncBuffer
}

// startDaemon starts a daemon of kind (lade or stock) as root with its
// state in a fresh directory; toml is its config file and args are extra
// flags. It is stopped when the test ends and its log is shown if the test
// failed.
func startDaemon(t *testing.T, kind, toml string, args ...string) *daemon {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("integration tests run as root: the daemons mount snapshots and run runc")
	}
	testutil.RequireTool(t, "runc")
	bin := filepath.Join(binDir(t), kind)
	dir, err := os.MkdirTemp("", "lbk-") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "buildkitd.toml")
	if err := os.WriteFile(cfg, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	d := &daemon{kind: kind, addr: "unix://" + filepath.Join(dir, "sock"), dir: dir, log: &syncBuffer{}}
	// Each daemon has its own trace socket: on the shared default path
	// (/run/buildkit/otel-grpc.sock) a daemon stopping removes the socket
	// another one's RUN steps are about to bind-mount, failing them.
	d.cmd = exec.Command(bin, append([]string{"--config", cfg, "--root", filepath.Join(dir, "root"), "--addr", d.addr,
		"--otel-socket-path", filepath.Join(dir, "otel.sock")}, args...)...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.stop(t) })
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := exec.Command(filepath.Join(binDir(t), "buildctl"), "--addr", d.addr, "debug", "workers").CombinedOutput()
		if err == nil {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer: %v\n%s\n%s", kind, err, out, d.log.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// stop terminates the daemon and removes its state.
func (d *daemon) stop(t *testing.T) {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = d.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = d.cmd.Process.Kill()
		<-done
	}
	if t.Failed() {
		t.Logf("%s log:\n%s", d.kind, d.log.Tail(60))
	}
	testutil.UnmountUnder(d.dir)
	_ = os.RemoveAll(d.dir)
}

// buildctl runs the stock buildctl against the daemon and returns its
// combined output.
func (d *daemon) buildctl(ctx context.Context, args ...string) (string, error) {
	args = append([]string{"--addr", d.addr}, args...)
	out, err := exec.CommandContext(ctx, filepath.Join(bins.dir, "buildctl"), args...).CombinedOutput()
	return string(out), err
}

// build runs a Dockerfile build of contextDir (Dockerfile included) with
// plain progress and extra buildctl flags.
func (d *daemon) build(t *testing.T, contextDir string, flags ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := append([]string{"build", "--progress", "plain", "--frontend", "dockerfile.v0",
		"--local", "context=" + contextDir, "--local", "dockerfile=" + contextDir}, flags...)
	return d.buildctl(ctx, args...)
}

// mustBuild is build that fails the test on error.
func (d *daemon) mustBuild(t *testing.T, contextDir string, flags ...string) string {
	t.Helper()
	out, err := d.build(t, contextDir, flags...)
	if err != nil {
		t.Fatalf("build on %s (%s): %v\n%s", d.kind, strings.Join(flags, " "), err, out)
	}
	return out
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Tail returns the last n lines.
func (s *syncBuffer) Tail(n int) string {
	lines := strings.Split(strings.TrimRight(s.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
