package reliability

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// node is what a tree comparison looks at in one file.
type node struct {
	// mode is the type and permission bits, setuid, setgid and sticky
	// included.
	mode     fs.FileMode
	uid, gid uint32
	// size of a regular file.
	size int64
	// data is the sha256 of a regular file's content, the target of a
	// symlink.
	data string
	// rdev is the device number of a device node.
	rdev uint64
	// mtime in whole seconds.
	mtime int64
	// xattrs lists every extended attribute, sorted, quoted.
	xattrs string
	// link is the first path (in walk order) of a regular file's inode:
	// equal for the names of one hardlinked file.
	link string
}

// String shows a node in failure messages.
func (n node) String() string {
	return fmt.Sprintf("%v %d:%d size=%d data=%q rdev=%d,%d mtime=%d xattrs=[%s] link=%q",
		n.mode, n.uid, n.gid, n.size, n.data, unix.Major(n.rdev), unix.Minor(n.rdev), n.mtime, n.xattrs, n.link)
}

// scanOptions tune scanTree.
type scanOptions struct {
	// noSymlinkTimes leaves symlink mtimes out.
	noSymlinkTimes bool
}

// scanTree describes every file under root (root itself excluded).
func scanTree(t testing.TB, root string, opts scanOptions) map[string]node {
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
		n := node{mode: fi.Mode(), uid: st.Uid, gid: st.Gid, mtime: st.Mtim.Sec}
		if n.xattrs, err = xattrs(path); err != nil {
			return err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			n.data, err = os.Readlink(path)
			if opts.noSymlinkTimes {
				n.mtime = 0
			}
		case fi.Mode().IsRegular():
			n.size = fi.Size()
			n.data, err = fileHash(path)
			if _, seen := inodes[st.Ino]; !seen {
				inodes[st.Ino] = rel
			}
			n.link = inodes[st.Ino]
		case fi.Mode()&(fs.ModeDevice|fs.ModeCharDevice) != 0:
			n.rdev = st.Rdev
		}
		nodes[rel] = n
		return err
	})
	if err != nil {
		t.Fatalf("scan %s: %v", root, err)
	}
	return nodes
}

// xattrs lists path's extended attributes (not following a symlink).
func xattrs(path string) (string, error) {
	size, err := unix.Llistxattr(path, nil)
	if err != nil || size == 0 {
		return "", err
	}
	buf := make([]byte, size)
	size, err = unix.Llistxattr(path, buf)
	if err != nil {
		return "", err
	}
	var out []string
	for _, name := range strings.Split(strings.TrimRight(string(buf[:size]), "\x00"), "\x00") {
		vsize, err := unix.Lgetxattr(path, name, nil)
		if err != nil {
			return "", fmt.Errorf("getxattr %s %s: %w", path, name, err)
		}
		val := make([]byte, vsize)
		if vsize > 0 {
			if vsize, err = unix.Lgetxattr(path, name, val); err != nil {
				return "", fmt.Errorf("getxattr %s %s: %w", path, name, err)
			}
		}
		out = append(out, fmt.Sprintf("%s=%q", name, val[:vsize]))
	}
	sort.Strings(out)
	return strings.Join(out, " "), nil
}

// fileHash returns the sha256 of a file's content, hex.
func fileHash(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// compareTrees fails the test unless got holds exactly want's files, each
// node equal. what names got in messages.
func compareTrees(t testing.TB, what string, want, got map[string]node) {
	t.Helper()
	var paths []string
	for p := range want {
		paths = append(paths, p)
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	bad := 0
	var msgs bytes.Buffer
	for _, p := range paths {
		wn, inWant := want[p]
		gn, inGot := got[p]
		switch {
		case !inGot:
			fmt.Fprintf(&msgs, "  %q: missing (want %v)\n", p, wn)
		case !inWant:
			fmt.Fprintf(&msgs, "  %q: should not exist (%v)\n", p, gn)
		case wn != gn:
			fmt.Fprintf(&msgs, "  %q:\n     got %v\n    want %v\n", p, gn, wn)
		default:
			continue
		}
		bad++
	}
	if bad > 0 {
		t.Errorf("%s differs from the input tree in %d of %d paths:\n%s", what, bad, len(paths), msgs.String())
	}
}
