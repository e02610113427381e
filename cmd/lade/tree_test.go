package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/lade-build/lade/internal/testutil"
)

// longName is a file name longer than the 100 bytes of a plain tar header.
var longName = strings.Repeat("a-very-long-file-name-", 6) + "end.txt"

// fixture is a generated three-layer tree and a spec exporting it for two
// platforms.
type fixture struct {
	dir string
	// layers are full root filesystems, bottom first: l1 a busybox rootfs,
	// l2 l1 plus every kind of change, l3 identical to l2 (an empty layer).
	layers []string
	// spec exports the layers for linux/amd64 and linux/arm64.
	spec string
}

// newFixture generates the layers under a temp dir. The arm64 image uses
// the same (amd64) busybox: to lade it is just bytes.
func newFixture(t *testing.T) fixture {
	t.Helper()
	testutil.RequireTool(t, "busybox", "cp")
	dir := t.TempDir()
	fx := fixture{dir: dir, spec: filepath.Join(dir, "spec.yaml")}
	for _, l := range []string{"l1", "l2", "l3"} {
		fx.layers = append(fx.layers, filepath.Join(dir, l))
	}
	writeLayer1(t, fx.layers[0])
	testutil.Run(t, "cp", "-a", fx.layers[0], fx.layers[1])
	changeLayer2(t, fx.layers[1])
	testutil.Run(t, "cp", "-a", fx.layers[1], fx.layers[2])
	spec := "platforms:\n" +
		"  - platform: linux/amd64\n    layers: [l1, l2, l3]\n" +
		"  - platform: linux/arm64\n    layers: [l1, l2, l3]\n"
	writeFile(t, fx.spec, spec, 0o644)
	return fx
}

// writeLayer1 writes a busybox root filesystem with what layer 2 deletes
// or replaces.
func writeLayer1(t *testing.T, root string) {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "bin/busybox"), string(b), 0o755)
	for _, applet := range []string{"sh", "cat", "ls", "echo"} {
		symlink(t, "busybox", filepath.Join(root, "bin", applet))
	}
	writeFile(t, filepath.Join(root, "etc/hello"), "hello from lade\n", 0o644)
	writeFile(t, filepath.Join(root, "etc/gone.conf"), "deleted in layer 2\n", 0o644)
	writeFile(t, filepath.Join(root, "var/olddir/sub/f"), "whole dir deleted in layer 2\n", 0o644)
	writeFile(t, filepath.Join(root, "opt/replaced"), "a file, a directory in layer 2\n", 0o644)
}

// changeLayer2 applies every kind of change to a copy of layer 1.
func changeLayer2(t *testing.T, root string) {
	p := func(rel string) string { return filepath.Join(root, rel) }
	writeFile(t, p("usr/bin/tool"), "#!/bin/sh\necho tool\n", 0o755)
	writeFile(t, p("etc/secret"), "s3cr3t\n", 0o600)
	writeFile(t, p("usr/bin/suid"), "setuid\n", os.ModeSetuid|0o755)
	symlink(t, "../etc/hello", p("bin/hello-rel"))
	symlink(t, "/etc/hello", p("etc/hello-abs"))
	symlink(t, "/does/not/exist", p("dangling"))
	writeFile(t, p("data/a"), "one inode, two names\n", 0o644)
	if err := os.Link(p("data/a"), p("data/b")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, p("data/"+longName), "long\n", 0o644)
	must(t, os.MkdirAll(p("empty"), 0o755))
	writeFile(t, p("home/user/owned"), "not root's\n", 0o640)
	must(t, os.Lchown(p("home/user/owned"), 1234, 5678))
	must(t, os.Lchown(p("home/user"), 1234, 5678))
	must(t, os.Remove(p("etc/gone.conf")))
	must(t, os.RemoveAll(p("var/olddir")))
	must(t, os.Remove(p("opt/replaced")))
	writeFile(t, p("opt/replaced/inner"), "now a directory\n", 0o644)
}

// writeFile writes a file with mode (chmod'ed, whatever the umask),
// creating its parent directories.
func writeFile(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(path), 0o755))
	must(t, os.WriteFile(path, []byte(data), mode))
	must(t, os.Chmod(path, mode))
}

// symlink creates path -> target, with its parent directories.
func symlink(t *testing.T, target, path string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(path), 0o755))
	must(t, os.Symlink(target, path))
}

// must fails the test on a non-nil error.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// node is what compareTrees looks at in one file: everything but times.
type node struct {
	mode     fs.FileMode
	uid, gid uint32
	// data is the sha256 of a regular file, the target of a symlink.
	data string
	// link is the first path (in walk order) of the file's inode: equal
	// for the names of one hardlinked file.
	link string
}

// String shows a node in failure messages.
func (n node) String() string {
	return fmt.Sprintf("%v %d:%d %q link=%q", n.mode, n.uid, n.gid, n.data, n.link)
}

// scanTree describes every file under root (root itself excluded).
func scanTree(t *testing.T, root string) map[string]node {
	t.Helper()
	nodes := map[string]node{}
	inodes := map[uint64]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == root {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		fi, err := os.Lstat(path)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		n := node{mode: fi.Mode(), uid: st.Uid, gid: st.Gid}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			n.data, err = os.Readlink(path)
		case fi.Mode().IsRegular():
			n.data, err = fileHash(path)
			if _, seen := inodes[st.Ino]; !seen {
				inodes[st.Ino] = rel
			}
			n.link = inodes[st.Ino]
		}
		nodes[rel] = n
		return err
	})
	if err != nil {
		t.Fatalf("scan %s: %v", root, err)
	}
	return nodes
}

// fileHash returns the hex sha256 of a file's content.
func fileHash(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// compareTrees fails the test unless got holds exactly the files of want
// with the same types, modes (setuid included), owners, contents, symlink
// targets and hardlinks. Times are ignored.
func compareTrees(t *testing.T, want, got string) {
	t.Helper()
	w, g := scanTree(t, want), scanTree(t, got)
	var paths []string
	for p := range w {
		paths = append(paths, p)
	}
	for p := range g {
		if _, ok := w[p]; !ok {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	for _, p := range paths {
		wn, inWant := w[p]
		gn, inGot := g[p]
		switch {
		case !inGot:
			t.Errorf("%s: missing", p)
		case !inWant:
			t.Errorf("%s: should not exist (%v)", p, gn.mode)
		case wn != gn:
			t.Errorf("%s: got %v, want %v", p, gn, wn)
		}
	}
}
