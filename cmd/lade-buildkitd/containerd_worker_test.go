package main

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/containerd/v2/defaults"
	"github.com/moby/buildkit/cmd/buildkitd/config"
)

// TestContainerdDefaults: what the config leaves empty gets stock's
// defaults; what it sets stays; a rootless worker's auto network is the
// host's.
func TestContainerdDefaults(t *testing.T) {
	got := containerdDefaults(config.ContainerdConfig{})
	if got.Address != defaults.DefaultAddress || got.Namespace != "buildkit" || got.Snapshotter != defaults.DefaultSnapshotter || got.Mode != "auto" {
		t.Fatalf("defaults: address %q, namespace %q, snapshotter %q, net %q", got.Address, got.Namespace, got.Snapshotter, got.Mode)
	}
	set := config.ContainerdConfig{Address: "/x.sock", Namespace: "ns", Snapshotter: "native"}
	set.Mode = "bridge"
	if got := containerdDefaults(set); got.Address != "/x.sock" || got.Namespace != "ns" || got.Snapshotter != "native" || got.Mode != "bridge" {
		t.Fatalf("set values changed: %+v", got)
	}
	if got := containerdDefaults(config.ContainerdConfig{Rootless: true}); got.Mode != "host" {
		t.Fatalf("rootless auto network: %q, want host", got.Mode)
	}
}

// TestContainerdRuntime: [worker.containerd.runtime] options decode into
// runc's typed options for io.containerd.runc.v2 and into the generic ones
// otherwise; an option of the wrong type names the runtime.
func TestContainerdRuntime(t *testing.T) {
	if rt, err := containerdRuntime(config.ContainerdRuntime{}); rt != nil || err != nil {
		t.Fatalf("unnamed runtime: %v, %v", rt, err)
	}
	rt, err := containerdRuntime(config.ContainerdRuntime{Name: "io.containerd.runc.v2", Path: "/usr/bin/shim",
		Options: map[string]any{"BinaryName": "crun", "SystemdCgroup": true}})
	if err != nil {
		t.Fatal(err)
	}
	o, ok := rt.Options.(*runcoptions.Options)
	if !ok || o.BinaryName != "crun" || !o.SystemdCgroup || rt.Path != "/usr/bin/shim" {
		t.Fatalf("runc options: %#v", rt)
	}
	rt, err = containerdRuntime(config.ContainerdRuntime{Name: "io.containerd.kata.v2", Options: map[string]any{"ConfigPath": "/etc/kata.toml"}})
	if err != nil {
		t.Fatal(err)
	}
	if g, ok := rt.Options.(*runtimeoptions.Options); !ok || g.ConfigPath != "/etc/kata.toml" {
		t.Fatalf("generic options: %#v", rt.Options)
	}
	_, err = containerdRuntime(config.ContainerdRuntime{Name: "io.containerd.runc.v2", Options: map[string]any{"SystemdCgroup": "yes"}})
	if err == nil || !strings.Contains(err.Error(), "io.containerd.runc.v2") {
		t.Fatalf("bad option: %v", err)
	}
}

// TestContainerdWorkerEnabled: true and false decide; auto runs the
// worker only when the socket exists (tcp addresses always).
func TestContainerdWorkerEnabled(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "c.sock")
	on, off := true, false
	if !containerdWorkerEnabled(config.ContainerdConfig{Enabled: &on, Address: sock}) {
		t.Error("enabled=true with no socket: not enabled")
	}
	if containerdWorkerEnabled(config.ContainerdConfig{Address: sock}) {
		t.Error("auto with no socket: enabled")
	}
	if !containerdWorkerEnabled(config.ContainerdConfig{Address: "tcp://127.0.0.1:1"}) {
		t.Error("auto with a tcp address: not enabled")
	}
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if !containerdWorkerEnabled(config.ContainerdConfig{Address: "unix://" + sock}) {
		t.Error("auto with the socket: not enabled")
	}
	if containerdWorkerEnabled(config.ContainerdConfig{Enabled: &off, Address: sock}) {
		t.Error("enabled=false: enabled")
	}
}

// TestNewContainerdWorkerNoContainerd: without containerd on the address
// the worker is not created and the error names the address.
func TestNewContainerdWorkerNoContainerd(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "missing.sock")
	cfg := &config.Config{Root: dir}
	cfg.Workers.Containerd.Address = sock
	w, err := newContainerdWorker(context.Background(), cfg, differLade, workerCommon{})
	if err == nil || w != nil || !strings.Contains(err.Error(), sock) {
		t.Fatalf("worker %v, error %v", w, err)
	}
}
