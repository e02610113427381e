package testutil

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Dockerd is a private docker daemon (Debian's docker.io) started by a
// test, with everything under Dir and no network set-up.
type Dockerd struct {
	Dir  string // data root, exec root, pid file, socket; free for bind mounts
	Sock string // the API socket
}

// StartDockerd starts a docker daemon with its data, exec root, pid file
// and socket in a short temp dir, without a bridge or iptables rules.
// extraArgs, when not nil, adds daemon flags (it gets the dir first, to
// put files there). When the test ends, its containers are removed, the
// daemon is stopped, whatever it left mounted is unmounted and the dir is
// removed; on failure the end of its log is shown.
func StartDockerd(t testing.TB, extraArgs func(dir string) []string) *Dockerd {
	t.Helper()
	RequireTool(t, "dockerd", "docker")
	dir, err := os.MkdirTemp("", "lade-dk-") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) }) // runs last
	d := &Dockerd{Dir: dir, Sock: filepath.Join(dir, "d", "docker.sock")}
	args := []string{"--data-root", filepath.Join(dir, "d"), "--exec-root", filepath.Join(dir, "e"),
		"--pidfile", filepath.Join(dir, "pid"), "--host", "unix://" + d.Sock,
		"--bridge=none", "--iptables=false", "--ip6tables=false"}
	if extraArgs != nil {
		args = append(args, extraArgs(dir)...)
	}
	log := &syncBuffer{}
	cmd := exec.Command("dockerd", args...)
	cmd.Stdout, cmd.Stderr = log, log
	setParentDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if out, err := d.Docker("ps", "-aq"); err == nil && strings.TrimSpace(out) != "" {
			_, _ = d.Docker(append([]string{"rm", "-f", "-v"}, strings.Fields(out)...)...)
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("dockerd log:\n%s", log.Tail(4000))
		}
		UnmountUnder(dir)
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("dockerd exited: %v\n%s", err, log.Tail(4000))
		default:
		}
		if _, err := d.Docker("info"); err == nil {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("dockerd did not answer in 60s:\n%s", log.Tail(4000))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Docker runs the docker CLI against the daemon (2 minutes at most) and
// returns its combined output.
func (d *Dockerd) Docker(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", append([]string{"-H", "unix://" + d.Sock}, args...)...).CombinedOutput()
	return string(out), err
}

// MustDocker is Docker that fails the test on error.
func (d *Dockerd) MustDocker(t testing.TB, args ...string) string {
	t.Helper()
	out, err := d.Docker(args...)
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}
