//go:build integration

package frontendtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// ladeRun is how a test starts lade-buildkitd (or stock buildkitd, to
// compare) itself: its command-line arguments (after the binary; --root and
// a unix --addr are added), extra environment, and the buildctl global
// flags that reach it when ready.
type ladeRun struct {
	kind     string // the daemon: lade when empty, or stock
	args     []string
	env      []string
	addr     string   // readiness address; the unix socket when empty
	ctlFlags []string // buildctl global flags for addr (TLS files)
}

// startLadeWith starts lade-buildkitd as r says, with its state in a
// fresh directory, waits until buildctl reaches it, and stops it when the
// test ends (showing its log if the test failed).
func startLadeWith(t *testing.T, r ladeRun) *daemon {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("integration tests run as root: the daemons mount snapshots and run runc")
	}
	dir, err := os.MkdirTemp("", "lbk-")
	if err != nil {
		t.Fatal(err)
	}
	if r.kind == "" {
		r.kind = lade
	}
	d := &daemon{kind: r.kind, addr: "unix://" + filepath.Join(dir, "sock"), dir: dir, log: &syncBuffer{}}
	args := append([]string{"--root", filepath.Join(dir, "root"), "--addr", d.addr}, r.args...)
	d.cmd = exec.Command(filepath.Join(binDir(t), r.kind), args...)
	d.cmd.Env = append(os.Environ(), r.env...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.stop(t) })
	addr := r.addr
	if addr == "" {
		addr = d.addr
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := runBuildctl(context.Background(), t, addr, r.ctlFlags, "debug", "workers")
		if err == nil {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s %v did not answer on %s: %v\n%s\n%s", r.kind, r.args, addr, err, out, d.log.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// runBuildctl runs the stock buildctl with global flags against addr.
func runBuildctl(ctx context.Context, t *testing.T, addr string, global []string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	all := append(append([]string{"--addr", addr}, global...), args...)
	out, err := exec.CommandContext(ctx, filepath.Join(binDir(t), "buildctl"), all...).CombinedOutput()
	return string(out), err
}

// dockerfileBuildArgs are buildctl's arguments for a Dockerfile build of
// contextDir with plain progress, then extra flags.
func dockerfileBuildArgs(contextDir string, flags ...string) []string {
	return append([]string{"build", "--progress", "plain", "--frontend", "dockerfile.v0",
		"--local", "context=" + contextDir, "--local", "dockerfile=" + contextDir}, flags...)
}

// freeTCPAddr returns a 127.0.0.1 address nobody listens on.
func freeTCPAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprintf("127.0.0.1:%d", l.Addr().(*net.TCPAddr).Port)
}
