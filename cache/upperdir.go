package cache

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	cfs "github.com/containerd/continuity/fs"
	"golang.org/x/sys/unix"
)

// UpperdirWalk returns the walk of the changes an overlay upperdir records
// over base, the mounted tree of the layers below it: the changes BuildKit's
// overlay differ reports (util/overlay.Changes, BuildKit v0.34.2), in the
// same order, with the same kinds and FileInfo contents, failing where it
// fails (a redirect_dir directory, a whiteout where base has something that
// is not a directory above the path, xattr calls refused). Whiteouts of
// entries base lacks are skipped; directories that are also in base with
// the same mode, owner, device and capability are not reported; an opaque
// directory's changes come from continuity's fs.Changes between base's
// directory and view's, view being an overlay mount of the upperdir alone
// (BuildKit's "upperdir view", whiteouts hidden).
//
// It costs fewer system calls than BuildKit's walk: each directory of the
// upperdir is read through its descriptor and each entry stat'ed relative
// to it, each entry is looked up in base relative to base's directory
// (opened once per directory, following symlinks as a full path would), and
// nothing is looked up below a directory base lacks. Paths longer than
// PATH_MAX, where BuildKit's lookups fail, are walked.
//
// The writer's root must be view; the entries of the upperdir itself carry
// a FileInfo that makes a writer keeping only security.capability read them
// from the upperdir (the same inodes without the overlay layer), except a
// regular file with overlay metadata (metacopy, redirect, whiteout xattrs),
// which is read through view as BuildKit reads every entry.
func UpperdirWalk(upperdir, view, base string) WalkFunc {
	return func(ctx context.Context, fn cfs.ChangeFunc) error {
		w := &upperWalker{ctx: ctx, upperdir: upperdir, view: view, base: base, fn: fn, buf: make([]byte, 32<<10)}
		return w.run()
	}
}

// Overlay xattrs BuildKit reads on the upperdir's directories.
const (
	xattrRedirect     = "trusted.overlay.redirect"
	xattrOpaque       = "trusted.overlay.opaque"
	xattrUserOpaque   = "user.overlay.opaque"
	overlayXattrsFrom = "trusted.overlay."
)

// upperInfo is the FileInfo of an entry of an upperdir: its lstat, and
// the upperdir, which writers keeping only security.capability read it
// from.
type upperInfo struct {
	statInfo
	upperdir string
}

// directRoot returns the directory the entry is read from.
func (u *upperInfo) directRoot() string { return u.upperdir }

// upperWalker is one walk of UpperdirWalk.
type upperWalker struct {
	ctx                  context.Context
	upperdir, view, base string
	fn                   cfs.ChangeFunc
	buf                  []byte // getdents buffer, shared by every directory
}

// baseDir is base's directory at the path of an upperdir directory: open
// (an O_PATH descriptor), or the error a lookup below it gets.
type baseDir struct {
	fd  int
	err error
}

// openBaseDir opens name in the base directory parent as a full path's
// lookup of name/child resolves it: following a symlink.
func openBaseDir(parent baseDir, name string) baseDir {
	if parent.err != nil {
		return parent
	}
	fd, err := unix.Openat(parent.fd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return baseDir{fd: -1, err: err}
	}
	return baseDir{fd: fd}
}

func (b baseDir) close() {
	if b.err == nil {
		_ = unix.Close(b.fd)
	}
}

// lstat returns the lstat of name in b, or the error an lstat of the full
// path gets.
func (b baseDir) lstat(name string, st *unix.Stat_t) error {
	if b.err != nil {
		return b.err
	}
	for {
		err := unix.Fstatat(b.fd, name, st, unix.AT_SYMLINK_NOFOLLOW)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

func (w *upperWalker) run() error {
	var st unix.Stat_t
	if err := unix.Lstat(w.upperdir, &st); err != nil {
		return &os.PathError{Op: "lstat", Path: w.upperdir, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil
	}
	fd, err := unix.Open(w.upperdir, dirFlags, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: w.upperdir, Err: err}
	}
	defer unix.Close(fd)
	names, err := readNames(fd, w.buf)
	if err != nil {
		return &os.PathError{Op: "readdirent", Path: w.upperdir, Err: err}
	}
	base := openBaseDir(baseDir{fd: unix.AT_FDCWD}, w.base)
	defer base.close()
	return w.dir(fd, names, "", base)
}

// dir walks the entries names of the open upperdir directory fd, whose
// path is rel ("" for the root, else "/a/b"), base being base's directory
// at rel.
func (w *upperWalker) dir(fd int, names []string, rel string, base baseDir) error {
	for _, name := range names {
		if w.ctx.Err() != nil {
			return context.Cause(w.ctx)
		}
		fi := &upperInfo{upperdir: w.upperdir}
		if err := fi.fstatat(fd, name); err != nil {
			return &os.PathError{Op: "lstat", Path: w.upperdir + rel + "/" + name, Err: err}
		}
		if err := w.entry(fd, name, rel+"/"+name, fi, base); err != nil {
			return err
		}
	}
	return nil
}

// entry reports the change of one entry of the upperdir (name in the open
// directory parent, path p) and walks it when it is a directory that is
// not opaque, as util/overlay.Changes does.
func (w *upperWalker) entry(parent int, name, p string, fi *upperInfo, base baseDir) error {
	child, names := -1, []string(nil)
	if fi.IsDir() {
		var err error
		if child, err = unix.Openat(parent, name, dirFlags, 0); err != nil {
			return &os.PathError{Op: "open", Path: w.upperdir + p, Err: err}
		}
		defer unix.Close(child)
		if names, err = readNames(child, w.buf); err != nil {
			return &os.PathError{Op: "readdirent", Path: w.upperdir + p, Err: err}
		}
		if redirect, err := fdXattr(child, xattrRedirect); err != nil {
			return fmt.Errorf("failed to retrieve %s attr of %s: %w", xattrRedirect, w.upperdir+p, err)
		} else if len(redirect) > 0 {
			return fmt.Errorf("%s: redirect_dir is used but it's not supported in overlayfs differ", w.upperdir+p)
		}
	}
	var bst unix.Stat_t
	berr := base.lstat(name, &bst)
	kind, record := cfs.ChangeKind(cfs.ChangeKindAdd), true
	switch {
	case isWhiteout(fi):
		if berr != nil {
			if !errors.Is(berr, unix.ENOENT) {
				return fmt.Errorf("failed to lstat %s: %w", filepath.Join(w.base, p), berr)
			}
			return nil // deleted from nothing: no whiteout
		}
		kind = cfs.ChangeKindDelete
	case berr == nil:
		kind = cfs.ChangeKindModify
		same, err := w.sameDirent(&bst, fi, p)
		if same {
			record = false
		} else if err != nil {
			return err
		}
	case errors.Is(berr, unix.ENOENT) || errors.Is(berr, unix.ENOTDIR):
	default:
		return fmt.Errorf("failed to stat base file during overlay diff: %w", &os.PathError{Op: "lstat", Path: filepath.Join(w.base, p), Err: berr})
	}
	if record {
		if err := w.fn(kind, p, fi, nil); err != nil {
			return err
		}
	}
	if child < 0 {
		return nil
	}
	opaque, err := w.opaque(child, p, berr)
	if err != nil {
		return err
	}
	if opaque {
		return cfs.Changes(w.ctx, filepath.Join(w.base, p), filepath.Join(w.view, p),
			func(k cfs.ChangeKind, sub string, f os.FileInfo, err error) error {
				return w.fn(k, filepath.Join(p, sub), f, err)
			})
	}
	childBase := openBaseDir(base, name)
	defer childBase.close()
	return w.dir(child, names, p, childBase)
}

// isWhiteout reports whether the entry is an overlay whiteout, a 0/0
// character device.
func isWhiteout(fi *upperInfo) bool {
	if fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	rdev := uint64(fi.st.Rdev) // the type of Rdev varies by architecture
	return unix.Major(rdev) == 0 && unix.Minor(rdev) == 0
}

// opaque reports whether the open upperdir directory dir (path p) is
// opaque over a directory of base, whose lookup gave berr.
func (w *upperWalker) opaque(dir int, p string, berr error) (bool, error) {
	for _, key := range []string{xattrOpaque, xattrUserOpaque} {
		v, err := fdXattr(dir, key)
		if err != nil {
			return false, fmt.Errorf("failed to retrieve %s attr of %s: %w", key, w.upperdir+p, err)
		}
		if len(v) == 1 && v[0] == 'y' {
			if berr != nil {
				if !errors.Is(berr, unix.ENOENT) {
					return false, fmt.Errorf("failed to lstat %s: %w", filepath.Join(w.base, p), berr)
				}
				return false, nil // nothing below to hide
			}
			return true, nil
		}
	}
	return false, nil
}

// fdXattr returns the xattr name of the open file fd, nil when it has
// none.
func fdXattr(fd int, name string) ([]byte, error) {
	var small [64]byte
	v, err := getXattr(func(n string, b []byte) (int, error) { return unix.Fgetxattr(fd, n, b) }, name, small[:])
	if errors.Is(err, unix.ENODATA) {
		return nil, nil
	}
	return v, err
}

// readNames returns the names in the open directory fd, sorted as
// filepath.Walk sorts them, reading with buf.
func readNames(fd int, buf []byte) ([]string, error) {
	var names []string
	for {
		n, err := unix.Getdents(fd, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			break
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
	slices.Sort(names)
	return names, nil
}
