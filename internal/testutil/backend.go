package testutil

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// registryBinaries are the names Debian's distribution registry is
// installed under, in order of preference.
var registryBinaries = []string{"docker-registry", "registry"}

// startTimeout bounds the wait for a started registry to answer.
const startTimeout = 10 * time.Second

// startBackend starts the registry binary with a generated config storing
// under dir (with htpasswd auth when htpasswd is not empty) and returns its
// "127.0.0.1:PORT". It retries with a new port if the first one was taken.
func startBackend(t testing.TB, dir, htpasswd string) string {
	t.Helper()
	bin := registryBinary(t)
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		addr, err := freeAddr()
		if err != nil {
			t.Fatalf("find a free port: %v", err)
		}
		cfg := filepath.Join(dir, "config.yml")
		if err := os.WriteFile(cfg, []byte(registryConfig(dir, addr, htpasswd)), 0o644); err != nil {
			t.Fatalf("write registry config: %v", err)
		}
		if lastErr = runBackend(t, bin, cfg, addr); lastErr == nil {
			return addr
		}
	}
	t.Fatalf("start %s: %v", bin, lastErr)
	return ""
}

// registryBinary returns the path of the installed registry binary or fails
// the test.
func registryBinary(t testing.TB) string {
	t.Helper()
	for _, name := range registryBinaries {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatalf("docker-registry not installed: run hack/install-test-deps.sh")
	return ""
}

// runBackend starts bin serving cfg and waits until addr answers. On
// success the process is killed in t.Cleanup (its log shown if the test
// failed); on failure it is killed at once and the error carries its log.
func runBackend(t testing.TB, bin, cfg, addr string) error {
	log := &syncBuffer{}
	cmd := exec.Command(bin, "serve", cfg)
	cmd.Stdout, cmd.Stderr = log, log
	setParentDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}
	if err := waitReady(addr, exited); err != nil {
		stop()
		return fmt.Errorf("%w\n%s", err, log.String())
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("registry log (tail):\n%s", log.Tail(16<<10))
		}
	})
	return nil
}

// waitReady polls GET http://addr/v2/ until it gets any HTTP answer, the
// process exits or startTimeout passes.
func waitReady(addr string, exited <-chan error) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("registry exited early: %v", err)
		default:
		}
		if resp, err := client.Get("http://" + addr + "/v2/"); err == nil {
			_ = resp.Body.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("registry not answering on %s after %s", addr, startTimeout)
}

// registryConfig renders the registry's YAML config.
func registryConfig(dir, addr, htpasswd string) string {
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: warn
  formatter: text
storage:
  filesystem:
    rootdirectory: %q
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %q
  secret: lade-test-secret
  relativeurls: true
`, filepath.Join(dir, "storage"), addr)
	if htpasswd != "" {
		cfg += fmt.Sprintf(`auth:
  htpasswd:
    realm: lade-test
    path: %q
`, htpasswd)
	}
	return cfg
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// syncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// Tail returns at most the last n bytes written.
func (b *syncBuffer) Tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	data := b.buf.Bytes()
	if len(data) > n {
		data = data[len(data)-n:]
	}
	return string(data)
}

// String returns everything written so far.
func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
