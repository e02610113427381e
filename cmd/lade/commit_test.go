package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/pkg/archive/compression"
	"github.com/lade-build/lade/exporter/containerd/containerdtest"
	"github.com/lade-build/lade/exporter/unpack"
	"github.com/lade-build/lade/imagestore"
	"github.com/lade-build/lade/internal/testutil"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"
)

// containerd's local store warns on every open where fsverity is missing
// (commitUnpack opens the store): keep test output readable.
func init() { logrus.SetLevel(logrus.ErrorLevel) }

// TestCommit commits an edited copy of a busybox base: the image has the
// base's layer plus one holding the edits, config and history as docker
// commit makes them; --unpack leaves a rootfs that runc runs, showing the
// changes. Committing the unchanged rootfs gives an empty_layer entry and
// no layer.
func TestCommit(t *testing.T) {
	testutil.RequireTool(t, "runc", "busybox")
	c := commitRunner(t)
	commitBusybox(t, c, "bb:1")
	rootfs := commitUnpack(t, c, "bb:1")
	writeFile(t, filepath.Join(rootfs, "etc/greeting"), "hello from the rootfs\n", 0o644)
	must(t, os.Remove(filepath.Join(rootfs, "bin/ls")))
	run := filepath.Join(t.TempDir(), "run")
	md := filepath.Join(t.TempDir(), "md.json")
	out := c.ok("commit", "--progress", "quiet", "--base", "bb:1", "--rootfs", rootfs,
		"--author", "Ada <ada@example.com>", "-m", "add a greeting",
		"-c", "ENV GREETING=hi", "-c", `CMD ["/bin/sh", "-c", "cat greeting; echo $GREETING; [ -e /bin/ls ] || echo no ls"]`,
		"-c", "WORKDIR etc", "-c", "LABEL org.example.k=v", "--unpack", run, "--metadata-file", md, "app:1")
	app, base := c.inspect("app:1").Images[0], c.inspect("bb:1").Images[0]
	if strings.TrimSpace(out) != c.inspect("app:1").Digest.String() {
		t.Errorf("commit printed %q, image is %s", out, c.inspect("app:1").Digest)
	}
	if len(app.Layers) != 2 || app.Layers[0] != base.Layers[0] {
		t.Fatalf("layers %+v: want the base's then one new", app.Layers)
	}
	cfg := app.Config
	h := cfg.History[len(cfg.History)-1]
	if len(cfg.History) != 2 || h.Author != "Ada <ada@example.com>" || h.Comment != "add a greeting" || h.EmptyLayer ||
		!strings.HasPrefix(h.CreatedBy, "ENV GREETING=hi; CMD") || cfg.Created == nil || !h.Created.Equal(*cfg.Created) {
		t.Errorf("history %s", jsonString(cfg.History))
	}
	ic := cfg.Config
	if cfg.Author != "Ada <ada@example.com>" || ic.WorkingDir != "/etc" || ic.Labels["org.example.k"] != "v" || !slices.Contains(ic.Env, "GREETING=hi") {
		t.Errorf("config %s", jsonString(cfg))
	}
	var meta commitOutput
	b, err := os.ReadFile(md)
	must(t, err)
	mustJSON(t, string(b), &meta)
	if meta.Result.Empty || meta.Result.Descriptor.Digest != app.Manifest.Digest {
		t.Errorf("metadata %s", b)
	}

	// The unchanged rootfs: no layer, an empty_layer entry, the base's author.
	c.ok("commit", "--progress", "quiet", "--base", "app:1", "--rootfs", run, "app:2")
	same := c.inspect("app:2").Images[0]
	last := same.Config.History[len(same.Config.History)-1]
	if len(same.Layers) != 2 || !last.EmptyLayer || last.CreatedBy != "lade commit" || last.Author != "Ada <ada@example.com>" {
		t.Errorf("unchanged commit: %d layers, last history %s", len(same.Layers), jsonString(last))
	}

	got := commitRunc(t, run, app.Config.Config)
	if got != "hello from the rootfs\nhi\nno ls\n" {
		t.Errorf("runc run printed %q", got)
	}
	c.checkClean()
}

// TestCommitContainerd commits into containerd too: ctr lists the image,
// its config carries the snapshot label, and ctr runs it.
func TestCommitContainerd(t *testing.T) {
	testutil.RequireTool(t, "ctr", "runc", "busybox")
	sock := containerdtest.Start(t)
	c := commitRunner(t)
	commitBusybox(t, c, "bb:1")
	rootfs := commitUnpack(t, c, "bb:1")
	writeFile(t, filepath.Join(rootfs, "etc/greeting"), "hello from containerd\n", 0o644)
	md := filepath.Join(t.TempDir(), "md.json")
	c.ok("commit", "--progress", "quiet", "--base", "bb:1", "--rootfs", rootfs, "-c", `CMD ["/bin/cat", "/etc/greeting"]`,
		"--containerd", "containerd://"+sock+"?namespace=lade-e2e", "--metadata-file", md, "app:1")
	var meta commitOutput
	b, err := os.ReadFile(md)
	must(t, err)
	mustJSON(t, string(b), &meta)
	if meta.Containerd == nil || meta.Containerd.Snapshot == "" || meta.Containerd.Copied != 4 {
		t.Fatalf("containerd result %s: want 4 blobs copied and a snapshot", b)
	}
	ctr := func(args ...string) string {
		return testutil.Run(t, "ctr", append([]string{"-a", sock, "-n", "lade-e2e"}, args...)...)
	}
	if out := ctr("images", "ls", "-q"); strings.TrimSpace(out) != "docker.io/library/app:1" {
		t.Errorf("ctr images ls: %q", out)
	}
	mdesc := c.inspect("app:1").Images[0].Manifest
	var m ocispec.Manifest
	mustJSON(t, ctr("content", "get", mdesc.Digest.String()), &m)
	if out := ctr("content", "ls"); !strings.Contains(out, "containerd.io/gc.ref.snapshot.overlayfs="+meta.Containerd.Snapshot) {
		t.Errorf("no gc.ref.snapshot label on the config (config %s):\n%s", m.Config.Digest, out)
	}
	if out := ctr("run", "--rm", "docker.io/library/app:1", "lade-commit-e2e"); out != "hello from containerd\n" {
		t.Errorf("ctr run printed %q", out)
	}
}

// TestCommitMatchesDockerCommit makes the same edits and --change list
// with docker commit (a real dockerd) and lade commit: configs, history
// (but created_by, which docker takes from the container's command) and the
// new layer's entries match, changed and unchanged rootfs alike.
func TestCommitMatchesDockerCommit(t *testing.T) {
	testutil.RequireTool(t, "dockerd", "docker", "busybox")
	sock := testutil.StartDockerd(t, nil).Sock
	docker := func(t *testing.T, args ...string) string {
		return testutil.Run(t, "docker", append([]string{"-H", "unix://" + sock}, args...)...)
	}
	c := commitRunner(t)
	commitBusybox(t, c, "bb:1")
	bbTar := filepath.Join(t.TempDir(), "bb.tar")
	c.ok("save", "--progress", "quiet", "bb:1", "-o", "type=docker,dest="+bbTar)
	docker(t, "load", "-i", bbTar)
	for _, tc := range []struct {
		name, script string
		edit         func(rootfs string)
		flags        []string
	}{
		{"changed", "echo hi > /etc/greeting; rm /bin/ls", func(rootfs string) {
			writeFile(t, filepath.Join(rootfs, "etc/greeting"), "hi\n", 0o644)
			must(t, os.Remove(filepath.Join(rootfs, "bin/ls")))
		}, []string{"-a", "Ada", "-m", "greet", "-c", "ENV G=hello P=$PATH:/x", "-c", `CMD ["/bin/cat", "/etc/greeting"]`}},
		{"unchanged", "echo", func(string) {}, []string{"-c", `ENTRYPOINT ["/bin/echo"]`, "-c", "EXPOSE 80 53/udp",
			"-c", "VOLUME /data", "-c", "WORKDIR sub", "-c", "USER 1:1", "-c", `LABEL a=b "c d"=e`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			docker(t, "run", "--network", "none", "--name", tc.name, "bb:1", "sh", "-c", tc.script)
			docker(t, append(append([]string{"commit"}, tc.flags...), tc.name, "docker-"+tc.name+":1")...)
			dTar := filepath.Join(t.TempDir(), "d.tar")
			docker(t, "save", "-o", dTar, "docker-"+tc.name+":1")
			rootfs := commitUnpack(t, c, "bb:1")
			tc.edit(rootfs)
			c.ok(append(append([]string{"commit", "--progress", "quiet", "--base", "bb:1", "--rootfs", rootfs}, tc.flags...), "lade-"+tc.name+":1")...)
			lTar := filepath.Join(t.TempDir(), "l.tar")
			c.ok("save", "--progress", "quiet", "lade-"+tc.name+":1", "-o", "type=docker,dest="+lTar)
			compareCommits(t, readArchiveImage(t, dTar), readArchiveImage(t, lTar))
		})
	}
}

// compareCommits compares what docker commit and lade commit made.
func compareCommits(t *testing.T, d, l archiveImage) {
	t.Helper()
	norm := func(ic ocispec.ImageConfig) string {
		if len(ic.Labels) == 0 {
			ic.Labels = nil
		}
		return jsonString(ic)
	}
	if norm(d.config.Config) != norm(l.config.Config) {
		t.Errorf("config differs:\ndocker %s\nlade   %s", norm(d.config.Config), norm(l.config.Config))
	}
	if d.config.Author != l.config.Author || d.config.OS != l.config.OS || d.config.Architecture != l.config.Architecture ||
		len(d.config.RootFS.DiffIDs) != len(l.config.RootFS.DiffIDs) {
		t.Errorf("config differs:\ndocker %s\nlade   %s", jsonString(d.config), jsonString(l.config))
	}
	dh, lh := d.config.History, l.config.History
	if len(dh) != len(lh) || jsonString(dh[:len(dh)-1]) != jsonString(lh[:len(lh)-1]) {
		t.Fatalf("history differs:\ndocker %s\nlade   %s", jsonString(dh), jsonString(lh))
	}
	de, le := dh[len(dh)-1], lh[len(lh)-1]
	if de.Author != le.Author || de.Comment != le.Comment || de.EmptyLayer != le.EmptyLayer {
		t.Errorf("new history entry differs:\ndocker %s\nlade   %s", jsonString(de), jsonString(le))
	}
	if !slices.Equal(d.lastLayer, l.lastLayer) {
		t.Errorf("new layer differs:\ndocker %v\nlade   %v", d.lastLayer, l.lastLayer)
	}
}

// TestCommitBadInputs checks that commit's mistakes fail with one line
// before any work, and leave no image.
func TestCommitBadInputs(t *testing.T) {
	c := commitRunner(t)
	dir := t.TempDir()
	full := t.TempDir()
	writeFile(t, filepath.Join(full, "x"), "x", 0o644)
	for _, tc := range []struct {
		want string
		args []string
	}{
		{"RUN is not an instruction commit takes", []string{"--rootfs", dir, "-c", "RUN make", "x:1"}},
		{"ports 1-65535", []string{"--rootfs", dir, "-c", "EXPOSE 0", "x:1"}},
		{"not a directory", []string{"--rootfs", filepath.Join(dir, "missing"), "x:1"}},
		{"directory is not empty", []string{"--rootfs", dir, "--unpack", full, "x:1"}},
		{`unknown parameter "ns"`, []string{"--rootfs", dir, "--containerd", "containerd:///x.sock?ns=a", "x:1"}},
		{"image nope", []string{"--rootfs", dir, "--base", "nope", "x:1"}},
		{"one NAME", []string{"--rootfs", dir}},
	} {
		c.fail(tc.want, append([]string{"commit", "--progress", "quiet"}, tc.args...)...)
	}
	if imgs := c.images(); len(imgs) != 0 {
		t.Errorf("failed commits left images %v", imgs)
	}
}

// commitRunner returns a runner, failing at once when main.go does not
// register lade commit and lade manifest.
func commitRunner(t *testing.T) *runner {
	t.Helper()
	c := newRunner(t)
	for _, cmd := range []string{"commit", "manifest"} {
		if r := c.run(cmd, "--help"); r.code != 0 || !strings.Contains(r.stdout, "lade "+cmd) {
			t.Fatalf("lade %s is not registered: add commitCommand(), manifestCommand() to main.go's Commands\n%s", cmd, r)
		}
	}
	return c
}

// commitBusybox exports a busybox image (busybox and a few applet links)
// as name.
func commitBusybox(t *testing.T, c *runner, name string, extra ...string) {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	must(t, err)
	data, err := os.ReadFile(bb)
	must(t, err)
	dir := filepath.Join(t.TempDir(), "busybox")
	writeFile(t, filepath.Join(dir, "bin/busybox"), string(data), 0o755)
	must(t, os.MkdirAll(filepath.Join(dir, "etc"), 0o755))
	for _, n := range []string{"sh", "cat", "echo", "ls"} {
		symlink(t, "busybox", filepath.Join(dir, "bin", n))
	}
	args := append([]string{"export", "--progress", "quiet", "--env", "PATH=/bin", "--cmd", `["/bin/sh"]`}, extra...)
	c.ok(append(args, "-o", "type=image,name="+name, dir)...)
}

// commitUnpack unpacks a stored image into a fresh directory, as a user
// would to edit it.
func commitUnpack(t *testing.T, c *runner, name string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "rootfs")
	withStoredImage(t, c, name, func(ctx context.Context, s *imagestore.Store, target ocispec.Descriptor) {
		must(t, unpack.Unpack(ctx, s.Content(), target, dir, unpack.Options{}))
	})
	return dir
}

// commitRunc runs rootfs with runc: a spec from runc spec with the image
// config's command, environment and working directory.
func commitRunc(t *testing.T, rootfs string, ic ocispec.ImageConfig) string {
	t.Helper()
	bundle := t.TempDir()
	testutil.Run(t, "runc", "spec", "--bundle", bundle)
	path := filepath.Join(bundle, "config.json")
	b, err := os.ReadFile(path)
	must(t, err)
	var spec map[string]any
	mustJSON(t, string(b), &spec)
	spec["root"] = map[string]any{"path": rootfs, "readonly": true}
	proc := spec["process"].(map[string]any)
	proc["args"] = append(append([]string{}, ic.Entrypoint...), ic.Cmd...)
	proc["env"] = ic.Env
	proc["cwd"] = ic.WorkingDir
	b, err = json.Marshal(spec)
	must(t, err)
	must(t, os.WriteFile(path, b, 0o644))
	return runBundle(t, bundle)
}

// archiveImage is the image of a docker archive (docker save format).
type archiveImage struct {
	config ocispec.Image
	// lastLayer describes each entry of the last layer, mtimes left out.
	lastLayer []string
}

// readArchiveImage reads the only image of a docker archive.
func readArchiveImage(t *testing.T, path string) archiveImage {
	t.Helper()
	files := map[string][]byte{}
	f, err := os.Open(path)
	must(t, err)
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		must(t, err)
		b, err := io.ReadAll(tr)
		must(t, err)
		files[h.Name] = b
	}
	var mf []struct {
		Config string
		Layers []string
	}
	mustJSON(t, string(files["manifest.json"]), &mf)
	var img archiveImage
	mustJSON(t, string(files[mf[0].Config]), &img.config)
	layer := files[mf[0].Layers[len(mf[0].Layers)-1]]
	r, err := compression.DecompressStream(bytes.NewReader(layer))
	must(t, err)
	lr := tar.NewReader(r)
	for {
		h, err := lr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		must(t, err)
		mode := fmt.Sprintf("%o", h.Mode&0o7777) // docker adds the file type bits
		if strings.HasPrefix(filepath.Base(h.Name), ".wh.") {
			mode = "whiteout" // docker writes 0600, containerd and lade 0
		}
		img.lastLayer = append(img.lastLayer, fmt.Sprintf("%s %c %s %d:%d %d %s", h.Name, h.Typeflag, mode, h.Uid, h.Gid, h.Size, h.Linkname))
	}
	slices.Sort(img.lastLayer)
	return img
}
