// Package cachetest is the conformance suite of cache.Ref implementations:
// Run builds a generated two-layer fixture with a source under test and
// checks the diffs, identities, epoch clamping and stream behaviour every
// source must share. It also has the helpers to generate the fixture and to
// list the entries of a layer tar.
package cachetest

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Fixture is a generated two-layer root filesystem, as directories.
type Fixture struct {
	// Lower is the base root filesystem: the bottom layer holds all of it.
	Lower string
	// Upper is Lower with the top layer's changes applied: modified,
	// added and deleted files and directories, symlinks, hard links (new
	// ones and one to an unmodified file), a FIFO and a socket.
	Upper string
	// Old is the mtime of entries unchanged since Lower; New, later, the
	// mtime of changed entries. Both have a sub-second part.
	Old, New time.Time
	// Variant is the variant the fixture was generated with.
	Variant int
}

// node is one entry of a generated tree.
type node struct {
	path  string
	kind  byte // 'd' dir, 'f' file, 'l' symlink, 'h' hard link, 'p' fifo, 's' socket
	mode  os.FileMode
	data  string // file content; symlink or hard link target
	newer bool   // mtime New instead of Old
}

// Fixture times.
var (
	oldTime = time.Date(2021, 3, 4, 5, 6, 7, 500_000_000, time.UTC)
	newTime = oldTime.Add(48*time.Hour + 250*time.Millisecond)
)

// longName is a file name longer than a ustar header holds.
var longName = strings.Repeat("long", 30)

// bigData is generated file content larger than one copy buffer.
var bigData = func() string {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, 70_000)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return string(b)
}()

func lowerNodes() []node {
	return []node{
		{path: "bin", kind: 'd', mode: 0o755},
		{path: "bin/sh", kind: 'f', mode: 0o755, data: "#!/bin/sh\necho hi\n"},
		{path: "empty", kind: 'f', mode: 0o600},
		{path: "etc", kind: 'd', mode: 0o755},
		{path: "etc/hostname", kind: 'f', mode: 0o644, data: "lower-host\n"},
		{path: "etc/passwd", kind: 'f', mode: 0o644, data: "root:x:0:0:root:/root:/bin/sh\n"},
		{path: "tmp", kind: 'd', mode: 0o777 | os.ModeSticky},
		{path: "usr", kind: 'd', mode: 0o755},
		{path: "usr/lib", kind: 'd', mode: 0o755},
		{path: "usr/lib/big.bin", kind: 'f', mode: 0o644, data: bigData},
		{path: "usr/lib/hard1", kind: 'f', mode: 0o644, data: "hardlinked\n"},
		{path: "usr/lib/hard2", kind: 'h', data: "usr/lib/hard1"},
		{path: "usr/lib/" + longName, kind: 'f', mode: 0o644, data: "long name\n"},
		{path: "var", kind: 'd', mode: 0o755},
		{path: "var/cache", kind: 'd', mode: 0o755},
		{path: "var/cache/x.txt", kind: 'f', mode: 0o644, data: "cached\n"},
		{path: "var/log", kind: 'd', mode: 0o755},
	}
}

// upperNodes is lowerNodes with etc/passwd and var/cache deleted, and
// changes marked newer.
func upperNodes(variant int) []node {
	conf := "setting=1\n"
	if variant != 0 {
		conf = "setting=2 (variant)\n"
	}
	var out []node
	for _, n := range lowerNodes() {
		switch {
		case n.path == "etc/passwd" || strings.HasPrefix(n.path, "var/cache"):
			continue
		case n.path == "etc/hostname":
			n.data, n.newer = "upper-host\n", true
		case n.path == "bin" || n.path == "etc" || n.path == "usr/lib" || n.path == "var":
			n.newer = true
		}
		out = append(out, n)
	}
	return append(out,
		node{path: "bin/ash", kind: 'l', data: "sh", newer: true},
		node{path: "data", kind: 'd', mode: 0o750, newer: true},
		node{path: "data/a", kind: 'f', mode: 0o640, data: "shared\n", newer: true},
		node{path: "data/b", kind: 'h', data: "data/a"},
		node{path: "etc/new.conf", kind: 'f', mode: 0o600, data: conf, newer: true},
		node{path: "lib64", kind: 'l', data: "/usr/lib", newer: true},
		node{path: "run", kind: 'd', mode: 0o755, newer: true},
		node{path: "run/app.sock", kind: 's', newer: true},
		node{path: "run/ctl.fifo", kind: 'p', mode: 0o644, newer: true},
		node{path: "usr/lib/hard3", kind: 'h', data: "usr/lib/hard1"},
	)
}

// NewFixture generates the fixture under t.TempDir(). A non-zero variant
// changes one file's content and mtime in Upper.
func NewFixture(t testing.TB, variant int) Fixture {
	t.Helper()
	base := t.TempDir()
	fx := Fixture{
		Lower:   filepath.Join(base, "lower"),
		Upper:   filepath.Join(base, "upper"),
		Old:     oldTime,
		New:     newTime,
		Variant: variant,
	}
	writeTree(t, fx.Lower, lowerNodes(), 0)
	writeTree(t, fx.Upper, upperNodes(variant), variant)
	return fx
}

// writeTree creates nodes under root, then sets every mtime.
func writeTree(t testing.TB, root string, nodes []node, variant int) {
	t.Helper()
	must(t, os.Mkdir(root, 0o755))
	for _, n := range nodes {
		createNode(t, root, n)
	}
	for _, n := range nodes {
		if n.kind == 'h' {
			continue // shares its target's inode and times
		}
		tm := oldTime
		if n.newer {
			tm = newTime
			if variant != 0 && n.path == "etc/new.conf" {
				tm = tm.Add(time.Second)
			}
		}
		ts := []unix.Timespec{unix.NsecToTimespec(tm.UnixNano()), unix.NsecToTimespec(tm.UnixNano())}
		must(t, unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(root, n.path), ts, unix.AT_SYMLINK_NOFOLLOW))
	}
}

func createNode(t testing.TB, root string, n node) {
	t.Helper()
	p := filepath.Join(root, n.path)
	switch n.kind {
	case 'd':
		must(t, os.Mkdir(p, 0o700))
		must(t, os.Chmod(p, n.mode))
	case 'f':
		must(t, os.WriteFile(p, []byte(n.data), 0o600))
		must(t, os.Chmod(p, n.mode))
	case 'l':
		must(t, os.Symlink(n.data, p))
	case 'h':
		must(t, os.Link(filepath.Join(root, n.data), p))
	case 'p':
		must(t, unix.Mkfifo(p, 0o600))
		must(t, os.Chmod(p, n.mode))
	case 's':
		makeSocket(t, p)
	}
}

// makeSocket creates a unix socket file at p. It binds in a short temporary
// directory (socket paths are limited to 108 bytes) and moves the file.
func makeSocket(t testing.TB, p string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "s")
	must(t, err)
	defer os.RemoveAll(dir)
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	must(t, err)
	defer unix.Close(fd)
	tmp := filepath.Join(dir, "s")
	must(t, unix.Bind(fd, &unix.SockaddrUnix{Name: tmp}))
	must(t, os.Rename(tmp, p))
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
