package cache

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// trees are the directories one writer or reader reads entries from: the
// writer's root, and the upperdir of an overlay view, whose own entries
// (reported by UpperdirWalk) a writer keeping only security.capability
// reads directly: the view shows the same inodes, with the same content
// and security.capability, through the overlay layer, which costs a
// second lookup, open and close per file. A regular file with overlay
// metadata the view resolves is read through the view.
type trees struct {
	root  *rootFS
	upper *rootFS // the upperdir read directly; nil until one is
}

// directEntry is the FileInfo of an entry read from another directory
// than the writer's root: an upperdir's (upperInfo).
type directEntry interface{ directRoot() string }

// errOverlayMeta marks an upperdir's regular file with overlay metadata
// (metacopy, redirect or whiteout xattrs), which is read through the
// view.
var errOverlayMeta = errors.New("file with overlay metadata")

// openTrees opens the writer's root; capOnly reads no xattr but
// security.capability.
func openTrees(root string, capOnly bool) (*trees, error) {
	r, err := openRootFS(root, capOnly)
	if err != nil {
		return nil, err
	}
	return &trees{root: r}, nil
}

// Close releases the open directories.
func (t *trees) Close() error {
	if t.upper != nil {
		_ = t.upper.Close()
	}
	return t.root.Close()
}

// fsOf returns the tree the entry f is read from.
func (t *trees) fsOf(f os.FileInfo) (*rootFS, error) {
	d, ok := f.(directEntry)
	if !ok || !t.root.capOnly {
		return t.root, nil
	}
	if dir := d.directRoot(); t.upper == nil || t.upper.dir != dir {
		u, err := openRootFS(dir, true)
		if err != nil {
			return nil, err
		}
		u.upper = true
		if t.upper != nil {
			_ = t.upper.Close()
		}
		t.upper = u
	}
	return t.upper, nil
}

// Lstat stats name in the writer's root.
func (t *trees) Lstat(name string) (os.FileInfo, error) { return t.root.Lstat(name) }

// readMeta reads the symlink target and xattrs of the entry name (see
// rootFS.readMeta).
func (t *trees) readMeta(name string, f os.FileInfo) prepared {
	r, err := t.fsOf(f)
	if err != nil {
		return prepared{err: err}
	}
	return r.readMeta(name, f)
}

// openChecked opens the regular file name (see rootFS.openChecked).
func (t *trees) openChecked(name string, f os.FileInfo) (openFile, error) {
	r, err := t.fsOf(f)
	if err != nil {
		return openFile{fd: -1}, err
	}
	file, err := r.openChecked(name, f)
	if errors.Is(err, errOverlayMeta) {
		return t.root.openChecked(name, f)
	}
	return file, err
}

// openWithXattrs opens the regular file name and reads its xattrs (see
// rootFS.openWithXattrs).
func (t *trees) openWithXattrs(name string, f os.FileInfo) (openFile, prepared) {
	r, err := t.fsOf(f)
	if err != nil {
		return openFile{fd: -1}, prepared{err: err}
	}
	file, p := r.openWithXattrs(name, f)
	if errors.Is(p.err, errOverlayMeta) {
		return t.root.openWithXattrs(name, f)
	}
	return file, p
}

// ReadSmall reads the small regular file name (see rootFS.ReadSmall).
func (t *trees) ReadSmall(name string, f os.FileInfo, buf []byte) ([]xattr, error) {
	r, err := t.fsOf(f)
	if err != nil {
		return nil, err
	}
	xattrs, err := r.ReadSmall(name, f, buf)
	if errors.Is(err, errOverlayMeta) {
		return t.root.ReadSmall(name, f, buf)
	}
	return xattrs, err
}

// overlayCopyOrigin is the overlay xattr of a copied-up file that names
// its lower origin, which a view (where the upperdir is a lower layer)
// does not follow.
const overlayCopyOrigin = overlayXattrsFrom + "origin"

// upperFileXattrs returns the security.capability of the open regular
// file fd of an upperdir, with one listxattr for a file without any, or
// errOverlayMeta when the file has overlay metadata a view resolves.
func (r *rootFS) upperFileXattrs(fd int) ([]xattr, error) {
	names, err := listXattrs(func(b []byte) (int, error) { return unix.Flistxattr(fd, b) }, r.xbuf[:])
	if err != nil {
		return nil, fmt.Errorf("list xattrs: %w", err)
	}
	var out []xattr
	for _, n := range names {
		if strings.HasPrefix(n, overlayXattrsFrom) && n != overlayCopyOrigin {
			return nil, errOverlayMeta
		}
	}
	for _, n := range names {
		if n != capabilityXattr {
			continue
		}
		v, err := getXattr(func(n string, b []byte) (int, error) { return unix.Fgetxattr(fd, n, b) }, n, r.xbuf[:])
		if errors.Is(err, unix.ENODATA) {
			break // removed since listed
		}
		if err != nil {
			return nil, fmt.Errorf("get xattr %s: %w", n, err)
		}
		out = append(out, xattr{Name: n, Value: v})
	}
	return out, nil
}
