// Package containerdtest starts a real containerd daemon for tests: root,
// state and socket in a temp dir, the CRI plugin off, stopped when the test
// ends. It needs root and Debian's containerd (1.6 or later).
package containerdtest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lade-build/lade/internal/testutil"
)

// Start starts a containerd daemon with its root, state and
// socket in a temp dir and returns the socket; it is stopped when the test
// ends (its log shown if the test failed).
func Start(t testing.TB) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("containerd needs root: run the tests as root")
	}
	testutil.RequireTool(t, "containerd", "ctr")
	dir, err := os.MkdirTemp("", "lade-ctrd-")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "c.sock")
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %q
[ttrpc]
  address = %q
[debug]
  address = ""
[metrics]
  address = ""
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock, sock+".ttrpc")
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	log := &lockedBuffer{}
	cmd := exec.Command("containerd", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("containerd log:\n%s", log.String())
		}
		_ = exec.Command("umount", "-R", filepath.Join(dir, "root")).Run()
		_ = os.RemoveAll(dir)
	})
	for i := 0; ; i++ {
		if exec.Command("ctr", "-a", sock, "version").Run() == nil {
			return sock
		}
		if i == 100 {
			t.Fatalf("containerd did not answer on %s:\n%s", sock, log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// lockedBuffer is a bytes.Buffer safe for the daemon's output goroutine
// and the test reading it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
