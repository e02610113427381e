package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/buildkit/cmd/buildkitd/config"
	"github.com/moby/buildkit/worker/base"
)

// TestUseDiffer: "lade" installs a differ and switches BuildKit's
// overlayfs differ off (also when BuildKit's harness forced it on),
// "buildkit" changes nothing, an unknown name is refused with what to do.
func TestUseDiffer(t *testing.T) {
	t.Setenv(forceOverlayDiffEnv, "")
	var opt base.WorkerOpt
	if err := useDiffer(differBuildKit, &opt); err != nil || opt.Differ != nil || os.Getenv(forceOverlayDiffEnv) != "" {
		t.Fatalf("buildkit: err %v, differ %v, env %q", err, opt.Differ, os.Getenv(forceOverlayDiffEnv))
	}
	if err := useDiffer(differLade, &opt); err != nil || opt.Differ == nil || os.Getenv(forceOverlayDiffEnv) != "false" {
		t.Fatalf("lade: err %v, differ %v, env %q", err, opt.Differ, os.Getenv(forceOverlayDiffEnv))
	}
	// BuildKit's test harness forces its overlayfs differ on: lade's
	// differ stays, and BuildKit's is switched off again.
	t.Setenv(forceOverlayDiffEnv, "true")
	opt = base.WorkerOpt{}
	if err := useDiffer(differLade, &opt); err != nil || opt.Differ == nil || os.Getenv(forceOverlayDiffEnv) != "false" {
		t.Fatalf("forced overlay: err %v, differ %v, env %q", err, opt.Differ, os.Getenv(forceOverlayDiffEnv))
	}
	if err := useDiffer("fast", &base.WorkerOpt{}); err == nil || !strings.Contains(err.Error(), "use lade or buildkit") {
		t.Fatalf("unknown differ: %v", err)
	}
}

// TestServeDebug: the debug address serves Go's profile index until
// stopped.
func TestServeDebug(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	stop, err := serveDebug(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine") {
		t.Fatalf("status %d, body %.200s", resp.StatusCode, body)
	}
	stop()
	if _, err := http.Get("http://" + addr + "/debug/pprof/"); err == nil {
		t.Fatal("still serving after stop")
	}
	if _, err := serveDebug(context.Background(), "127.0.0.1:99999"); err == nil || !strings.Contains(err.Error(), "--debugaddr") {
		t.Fatalf("bad address: %v", err)
	}
}

// TestSnapshotterFactory: every snapshotter stock buildkitd's OCI worker
// offers is known (auto resolves to one), an unknown name and a proxy
// socket that does not exist are refused with what to use.
func TestSnapshotterFactory(t *testing.T) {
	root := t.TempDir()
	for _, name := range []string{"auto", "overlayfs", "fuse-overlayfs", "native", "stargz"} {
		f, err := snapshotterFactory(root, &config.OCIConfig{Snapshotter: name}, nil, nil)
		if err != nil || f.New == nil || f.Name == "auto" {
			t.Errorf("%s: %+v %v", name, f, err)
		}
	}
	if _, err := snapshotterFactory(root, &config.OCIConfig{Snapshotter: "zfs"}, nil, nil); err == nil || !strings.Contains(err.Error(), "use auto, overlayfs") {
		t.Errorf("unknown snapshotter: %v", err)
	}
	proxy := &config.OCIConfig{Snapshotter: "remote", ProxySnapshotterPath: filepath.Join(root, "none.sock")}
	if _, err := snapshotterFactory(root, proxy, nil, nil); err == nil || !strings.Contains(err.Error(), "do not include the 'unix://' prefix") {
		t.Errorf("missing proxy socket: %v", err)
	}
	if _, err := snapshotterFactory(root, &config.OCIConfig{Snapshotter: "stargz", StargzSnapshotterConfig: map[string]any{"no_prometheus": "yes"}}, nil, nil); err == nil {
		t.Error("a stargz config of the wrong type was accepted")
	}
}
