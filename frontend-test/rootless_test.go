//go:build integration

package frontendtest

import (
	"context"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lade-build/lade/internal/testutil"
)

// rootlessUser is the unprivileged user the rootless tests run
// lade-buildkitd as; it is created, with subordinate id ranges, if missing.
const rootlessUser = "lade-rootless"

// ensureRootlessUser returns the uid and gid of rootlessUser, creating the
// user (useradd gives it /etc/subuid and /etc/subgid ranges) if needed.
func ensureRootlessUser(t *testing.T) (uid, gid int) {
	t.Helper()
	u, err := user.Lookup(rootlessUser)
	if err != nil {
		if out, err := exec.Command("useradd", "--create-home", "--shell", "/bin/sh", rootlessUser).CombinedOutput(); err != nil {
			t.Fatalf("useradd %s: %v\n%s", rootlessUser, err, out)
		}
		if u, err = user.Lookup(rootlessUser); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		data, _ := os.ReadFile(f)
		if !strings.Contains(string(data), rootlessUser+":") {
			t.Fatalf("%s has no range for %s: add one (e.g. %s:300000:65536)", f, rootlessUser, rootlessUser)
		}
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid
}

// startRootless starts lade-buildkitd as rootlessUser under rootlesskit
// with --rootless and extra flags, its binary and state in a directory
// the user owns, and returns its socket; it is stopped when the test ends.
func startRootless(t *testing.T, flags ...string) string {
	t.Helper()
	testutil.RequireTool(t, "rootlesskit", "newuidmap", "runuser")
	uid, gid := ensureRootlessUser(t)
	dir, err := os.MkdirTemp("", "lbk-rl-")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, lade)
	rootfsCopy(t, filepath.Join(binDir(t), lade), bin)
	for _, sub := range []string{"xdg", "root"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	}); err != nil {
		t.Fatal(err)
	}
	sock := "unix://" + filepath.Join(dir, "sock")
	args := append([]string{"-u", rootlessUser, "--", "env", "USER=" + rootlessUser, "HOME=" + dir, "XDG_RUNTIME_DIR=" + filepath.Join(dir, "xdg"),
		"rootlesskit", "--state-dir=" + filepath.Join(dir, "rk"), "--net=host", "--copy-up=/etc", "--disable-host-loopback",
		bin, "--rootless", "--root", filepath.Join(dir, "root"), "--addr", sock}, flags...)
	log := &syncBuffer{}
	cmd := exec.Command("runuser", args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			t.Logf("rootless lade-buildkitd log:\n%s", log.Tail(40))
		}
		_ = os.RemoveAll(dir)
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := runBuildctl(context.Background(), t, sock, nil, "debug", "workers")
		if err == nil {
			return sock
		}
		select {
		case <-exited:
			t.Fatalf("rootless lade-buildkitd exited:\n%s", log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("rootless lade-buildkitd did not answer: %v\n%s\n%s", err, out, log.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestRootless: lade-buildkitd runs as an unprivileged user under
// rootlesskit with --rootless, on the overlayfs and native snapshotters
// and with --oci-worker-no-process-sandbox, and a Dockerfile RUN builds
// into lade's layers; the worker reports the process mode asked for.
func TestRootless(t *testing.T) {
	for _, c := range []struct {
		name, mode string
		flags      []string
	}{
		{"overlayfs", "sandbox", []string{"--oci-worker-snapshotter=overlayfs"}},
		{"native", "sandbox", []string{"--oci-worker-snapshotter=native"}},
		{"no-process-sandbox", "no-sandbox", []string{"--oci-worker-no-process-sandbox"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			sock := startRootless(t, c.flags...)
			out, err := runBuildctl(context.Background(), t, sock, nil, "debug", "workers", "-v")
			if err != nil || !strings.Contains(out, "org.mobyproject.buildkit.worker.oci.process-mode:\t"+c.mode) {
				t.Fatalf("worker: %v\n%s", err, out)
			}
			ctx := contextDir(t, "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"id -u > /uid && echo rootless > /msg\"]\n", nil)
			dest := t.TempDir()
			out, err = runBuildctl(context.Background(), t, sock, nil, dockerfileBuildArgs(ctx, "--output", "type=local,dest="+dest)...)
			if err != nil {
				t.Fatalf("build: %v\n%s", err, out)
			}
			msg, err := os.ReadFile(filepath.Join(dest, "msg"))
			if err != nil || string(msg) != "rootless\n" {
				t.Fatalf("RUN output: %q %v", msg, err)
			}
			out, err = runBuildctl(context.Background(), t, sock, nil, dockerfileBuildArgs(ctx, "--output", "type=oci,dest="+filepath.Join(dest, "o.tar"))...)
			if err != nil || !strings.Contains(out, "(lade ") {
				t.Fatalf("oci export: %v\n%s", err, out)
			}
		})
	}
}

// TestRootlessRefusals: stock buildkitd's answers outside a user
// namespace: a non-root user is told to use RootlessKit, and so is
// --oci-worker-rootless as root on the host.
func TestRootlessRefusals(t *testing.T) {
	uid, _ := ensureRootlessUser(t)
	dir, err := os.MkdirTemp("", "lbk-rl-") // t.TempDir's parent is private to root
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	bin := filepath.Join(dir, lade)
	rootfsCopy(t, filepath.Join(binDir(t), lade), bin)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, cmd := range map[string]*exec.Cmd{
		"non-root":                      exec.Command("runuser", "-u", rootlessUser, "--", bin, "--rootless", "--root", filepath.Join(dir, "r"), "--addr", "unix://"+filepath.Join(dir, "s")),
		"--oci-worker-rootless as root": exec.Command(bin, "--oci-worker-rootless", "--root", filepath.Join(dir, "r"), "--addr", "unix://"+filepath.Join(dir, "s")),
	} {
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "you may use RootlessKit") {
			t.Errorf("%s (uid %d): err %v\n%s", name, uid, err, out)
		}
	}
}
