package containerd_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/lade-build/lade/cache"
	"github.com/lade-build/lade/exporter"
	"github.com/lade-build/lade/exporter/containerd"
	"github.com/lade-build/lade/exporter/containerd/containerdtest"
	"github.com/lade-build/lade/imagestore"
	"github.com/lade-build/lade/internal/testutil"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestParseURL checks the containerd:// destination syntax.
func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want containerd.Target
		err  string
	}{
		{in: "containerd://", want: containerd.Target{Address: containerd.DefaultAddress, Namespace: "default", Snapshotter: "overlayfs", Unpack: true}},
		{in: "containerd:///tmp/c.sock?namespace=lade&unpack=false&snapshotter=native",
			want: containerd.Target{Address: "/tmp/c.sock", Namespace: "lade", Snapshotter: "native"}},
		{in: "docker:///tmp/c.sock", err: "use containerd://SOCKET"},
		{in: "containerd://host/x.sock", err: "not a host"},
		{in: "containerd:///x.sock?nmespace=a", err: `unknown parameter "nmespace"`},
		{in: "containerd:///x.sock?unpack=maybe", err: "use true or false"},
		{in: "containerd:///x.sock?namespace=a/b", err: "plain name"},
	} {
		got, err := containerd.ParseURL(tc.in)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseURL(%q) = %v, want error containing %q", tc.in, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("ParseURL(%q): %v", tc.in, err)
		case tc.err == "" && got != tc.want:
			t.Errorf("ParseURL(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

// TestExport exports a busybox image from a lade store into a containerd
// daemon started for the test: ctr lists the image and its blobs with
// containerd's labels, the config carries the gc.ref.snapshot label of the
// unpacked rootfs, ctr runs it, and a second export copies nothing.
func TestExport(t *testing.T) {
	testutil.RequireTool(t, "runc", "busybox")
	ctx := context.Background()
	sock := containerdtest.Start(t)
	s, err := imagestore.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	root := busyboxImage(t, s)
	target := containerd.Target{Address: sock, Namespace: "lade-test", Unpack: true}
	// A lease of lade's own store on the context must not reach containerd.
	lctx, release, err := s.WithLease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer release(ctx)
	res, err := containerd.Export(lctx, s.Content(), root, target, containerd.Options{Names: []string{"bb:1"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Copied != 3 || res.Present != 0 || res.Snapshot == "" {
		t.Errorf("first export: %+v, want 3 blobs copied and a snapshot", res)
	}
	ctr := func(args ...string) string {
		return testutil.Run(t, "ctr", append([]string{"-a", sock, "-n", "lade-test"}, args...)...)
	}
	if out := ctr("images", "ls", "-q"); strings.TrimSpace(out) != "docker.io/library/bb:1" {
		t.Errorf("ctr images ls: %q", out)
	}
	checkLabels(t, ctx, sock, root, res.Snapshot)
	if out := ctr("content", "ls"); !strings.Contains(out, "containerd.io/gc.ref.content.config") || !strings.Contains(out, "containerd.io/uncompressed") {
		t.Errorf("ctr content ls shows no containerd labels:\n%s", out)
	}
	out := ctr("run", "--rm", "docker.io/library/bb:1", "lade-ctr-test")
	if strings.TrimSpace(out) != "hello from lade" {
		t.Errorf("ctr run: %q, want the image's CMD output", out)
	}
	again, err := containerd.Export(ctx, s.Content(), root, target, containerd.Options{Names: []string{"bb:1", "bb:2"}})
	if err != nil {
		t.Fatal(err)
	}
	if again.Copied != 0 || again.Present != 3 {
		t.Errorf("second export: %+v, want nothing copied", again)
	}
	if out := ctr("leases", "ls", "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("leases left behind: %q", out)
	}
}

// checkLabels checks with the v2 client that the config references the
// snapshot and that the snapshot exists.
func checkLabels(t *testing.T, ctx context.Context, sock string, root ocispec.Descriptor, chainID string) {
	t.Helper()
	c, err := client.New(sock, client.WithDefaultNamespace("lade-test"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx = namespaces.WithNamespace(ctx, "lade-test")
	img, err := c.GetImage(ctx, "docker.io/library/bb:1")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.ContentStore().Info(ctx, cfg.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Labels["containerd.io/gc.ref.snapshot.overlayfs"]; got != chainID {
		t.Errorf("config labels %v: gc.ref.snapshot.overlayfs = %q, want %s", info.Labels, got, chainID)
	}
	diffIDs, err := img.RootFS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if identity.ChainID(diffIDs).String() != chainID {
		t.Errorf("snapshot %s is not the chain of %v", chainID, diffIDs)
	}
	if _, err := c.SnapshotService("overlayfs").Stat(ctx, chainID); err != nil {
		t.Errorf("snapshot %s: %v", chainID, err)
	}
	if ok, err := img.IsUnpacked(ctx, "overlayfs"); err != nil || !ok {
		t.Errorf("IsUnpacked = %v, %v", ok, err)
	}
	if root.Digest != img.Target().Digest {
		t.Errorf("image target %s, want %s", img.Target().Digest, root.Digest)
	}
}

// busyboxImage exports a busybox root filesystem whose CMD prints a line.
func busyboxImage(t *testing.T, s *imagestore.Store) ocispec.Descriptor {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"sh", "echo", "cat", "ls"} {
		if err := os.Symlink("busybox", filepath.Join(bin, n)); err != nil {
			t.Fatal(err)
		}
	}
	ref, err := cache.NewDirRef(dir, nil, cache.DirOptions{Description: "busybox"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := `{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":["/bin/echo","hello from lade"]}}`
	res, err := exporter.NewImageWriter(s.Content()).Commit(context.Background(), exporter.Source{
		Platforms: []exporter.PlatformSource{{Platform: "linux/amd64", Ref: ref, Config: []byte(cfg)}},
	}, exporter.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return res.Descriptor
}

// TestExportNoDaemon fails fast, naming the socket, when no daemon listens.
func TestExportNoDaemon(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	start := time.Now()
	_, err := containerd.Export(context.Background(), nil, ocispec.Descriptor{}, containerd.Target{Address: sock}, containerd.Options{Names: []string{"x"}})
	if err == nil || !strings.Contains(err.Error(), sock) {
		t.Fatalf("Export to %s: %v, want an error naming the socket", sock, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %s to fail", d)
	}
}
