package cache

import (
	"context"
	"os"

	cfs "github.com/containerd/continuity/fs"
	"golang.org/x/sys/unix"
)

// WalkTree returns the walk of every entry under root as added, the
// changes continuity's fs.Changes(ctx, "", root, fn) reports (the layer of
// a snapshot without a parent), in the same order with the same FileInfo
// contents, for fewer system calls: each directory is opened relative to
// its parent and each entry stat'ed relative to its directory, where
// filepath.Walk resolves every full path again. Like filepath.Walk it
// stops at the first error; a root that is not a directory (a symlink
// included) has no entries.
func WalkTree(root string) WalkFunc {
	return func(ctx context.Context, fn cfs.ChangeFunc) error {
		return walkTree(ctx, root, fn)
	}
}

// treeWalker is one walk of WalkTree.
type treeWalker struct {
	ctx  context.Context
	root string
	fn   cfs.ChangeFunc
	buf  []byte // getdents buffer, shared by every directory
}

func walkTree(ctx context.Context, root string, fn cfs.ChangeFunc) error {
	var st unix.Stat_t
	if err := unix.Lstat(root, &st); err != nil {
		return &os.PathError{Op: "lstat", Path: root, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil
	}
	fd, err := unix.Open(root, dirFlags, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: root, Err: err}
	}
	w := &treeWalker{ctx: ctx, root: root, fn: fn, buf: make([]byte, 32<<10)}
	return w.dir(fd, "")
}

// dir reports the entries of the open directory fd, whose path is rel
// ("" for the root, else "/a/b"), and walks its subdirectories; it closes
// fd.
func (w *treeWalker) dir(fd int, rel string) error {
	names, err := w.names(fd)
	if err != nil {
		_ = unix.Close(fd)
		return &os.PathError{Op: "readdirent", Path: w.root + rel, Err: err}
	}
	defer unix.Close(fd)
	for _, name := range names {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		p := rel + "/" + name
		fi := &statInfo{}
		if err := fi.fstatat(fd, name); err != nil {
			return &os.PathError{Op: "lstat", Path: w.root + p, Err: err}
		}
		if err := w.fn(cfs.ChangeKindAdd, p, fi, nil); err != nil {
			return err
		}
		if !fi.IsDir() {
			continue
		}
		child, err := unix.Openat(fd, name, dirFlags, 0)
		if err != nil {
			return &os.PathError{Op: "open", Path: w.root + p, Err: err}
		}
		if err := w.dir(child, p); err != nil {
			return err
		}
	}
	return nil
}

// names returns the names in the open directory fd, sorted as
// filepath.Walk sorts them.
func (w *treeWalker) names(fd int) ([]string, error) {
	return readNames(fd, w.buf)
}
