package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// registry is Debian's docker-registry on 127.0.0.1, storing under dir,
// without a blob descriptor cache so that wipe can empty it between
// builds (every push then uploads every blob).
type registry struct {
	host    string
	dir     string
	cmd     *exec.Cmd
	log     bytes.Buffer
	stopped chan struct{}
}

func startRegistry(dir string) (*registry, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	r := &registry{host: addr, dir: dir, stopped: make(chan struct{})}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: %q
  delete:
    enabled: true
http:
  addr: %s
`, filepath.Join(dir, "data"), addr)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	r.cmd = exec.Command("docker-registry", "serve", cfgPath)
	r.cmd.Stdout, r.cmd.Stderr = &r.log, &r.log
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := r.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = r.cmd.Wait(); close(r.stopped) }()
	hc := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, err := hc.Get("http://" + addr + "/v2/"); err == nil {
			resp.Body.Close()
			return r, nil
		}
	}
	r.stop()
	return nil, fmt.Errorf("docker-registry not answering on %s:\n%s", addr, r.log.String())
}

// wipe deletes everything the registry stored.
func (r *registry) wipe() error {
	data := filepath.Join(r.dir, "data")
	if err := os.RemoveAll(data); err != nil {
		return err
	}
	return os.MkdirAll(data, 0o755)
}

func (r *registry) stop() {
	_ = r.cmd.Process.Kill()
	<-r.stopped
	_ = os.RemoveAll(r.dir)
}
