package cache

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// rootFS reads entries of a directory tree by paths relative to its root
// without following a symlink out of it, on raw descriptors (an os.File
// would add the poller's fcntl and epoll calls to every open, a measurable
// share of a tree of small files). The parent directory of an entry is
// opened beneath the root with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS)
// in one call (or, where openat2 is missing, one component at a time with
// O_NOFOLLOW), relative to the last directory opened when it is below it;
// the entry itself is opened, read as a link, or asked for xattrs
// relative to that directory without following it. It is not safe for
// concurrent use.
type rootFS struct {
	dir    string
	rootFD int
	// The directory of the last entry, cached: entries come in walk
	// order, so consecutive entries mostly share it. parentFD is -1 when
	// none is open, rootFD when it is the root.
	parentName string
	parentFD   int
	// procFD is true when /proc/self/fd resolves, which the xattr calls of
	// entries that cannot be opened use to name them relative to an open
	// directory.
	procFD bool
	// noOpenat2 is set once openat2 failed as unsupported.
	noOpenat2 bool
	// fileFlags opens regular files: O_NOATIME until it is refused.
	fileFlags int
	// capOnly reads only the security.capability xattr (the writer keeps
	// no other).
	capOnly bool
	// upper is set on an overlay upperdir read directly (trees): its
	// regular files are opened with their xattrs read, and refused
	// (errOverlayMeta) when they have overlay metadata.
	upper bool
	// xbuf is the buffer of the first xattr list or get of each entry.
	xbuf [256]byte
}

// dirFlags open directories of the tree.
const dirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC

// openRootFS opens the tree dir; capOnly reads no xattr but
// security.capability.
func openRootFS(dir string, capOnly bool) (*rootFS, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open directory %s: %w", dir, &os.PathError{Op: "open", Path: dir, Err: err})
	}
	_, err = os.Stat("/proc/self/fd")
	return &rootFS{
		dir: dir, rootFD: fd, parentFD: -1, procFD: err == nil, capOnly: capOnly,
		fileFlags: unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC | unix.O_NOATIME,
	}, nil
}

// Close releases the open directories.
func (r *rootFS) Close() error {
	r.dropParent()
	return unix.Close(r.rootFD)
}

// dropParent closes the cached directory.
func (r *rootFS) dropParent() {
	if r.parentFD >= 0 && r.parentFD != r.rootFD {
		_ = unix.Close(r.parentFD)
	}
	r.parentName, r.parentFD = "", -1
}

// split returns the open parent directory of name (slash-separated, relative
// to the root, not "." or "") and name's base.
func (r *rootFS) split(name string) (int, string, error) {
	dir, base := ".", name
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		dir, base = name[:i], name[i+1:]
	}
	if base == "" || base == "." || base == ".." {
		return -1, "", fmt.Errorf("invalid entry name %q", name)
	}
	if dir == "" {
		dir = "."
	}
	fd, err := r.openDir(path.Clean(dir)) // no allocation when clean, as walks give
	return fd, base, err
}

// openDir returns the open directory dir (clean, relative to the root) and
// makes it the cached one; the descriptor belongs to r.
func (r *rootFS) openDir(dir string) (int, error) {
	if r.parentFD >= 0 && r.parentName == dir {
		return r.parentFD, nil
	}
	if dir == "." {
		r.dropParent()
		r.parentName, r.parentFD = dir, r.rootFD
		return r.rootFD, nil
	}
	from, rel := r.rootFD, dir
	if r.parentFD >= 0 && r.parentName != "." && strings.HasPrefix(dir, r.parentName+"/") {
		from, rel = r.parentFD, dir[len(r.parentName)+1:]
	}
	fd, err := r.openBeneath(from, rel)
	if err != nil {
		return -1, fmt.Errorf("open directory %s in %s: %w", dir, r.dir, &os.PathError{Op: "open", Path: path.Join(r.dir, dir), Err: err})
	}
	r.dropParent()
	r.parentName, r.parentFD = dir, fd
	return fd, nil
}

// openBeneath opens the directory rel (clean, relative) below the open
// directory from, following no symlink.
func (r *rootFS) openBeneath(from int, rel string) (int, error) {
	if !r.noOpenat2 {
		how := unix.OpenHow{
			Flags:   dirFlags,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
		}
		fd, err := unix.Openat2(from, rel, &how)
		for try := 0; errors.Is(err, unix.EAGAIN) && try < 3; try++ {
			fd, err = unix.Openat2(from, rel, &how) // a rename raced the lookup
		}
		if !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EAGAIN) {
			return fd, err
		}
		if !errors.Is(err, unix.EAGAIN) {
			r.noOpenat2 = true // a kernel before 5.6, or a seccomp filter refusing it
		}
	}
	fd := from
	for elem := range strings.SplitSeq(rel, "/") {
		if elem == ".." {
			return -1, unix.EXDEV
		}
		next, err := unix.Openat(fd, elem, dirFlags, 0)
		if fd != from {
			_ = unix.Close(fd)
		}
		if err != nil {
			return -1, err
		}
		fd = next
	}
	return fd, nil
}

// Lstat stats name without following it.
func (r *rootFS) Lstat(name string) (os.FileInfo, error) {
	fd, base, err := r.split(name)
	if err != nil {
		return nil, err
	}
	st := &statInfo{}
	if err := st.fstatat(fd, base); err != nil {
		return nil, &os.PathError{Op: "lstat", Path: path.Join(r.dir, name), Err: err}
	}
	return st, nil
}

// openChecked opens name read-only relative to its parent, without
// following it, and checks with fstat that it is the regular file want
// (see sameStat).
func (r *rootFS) openChecked(name string, want os.FileInfo) (openFile, error) {
	dir, base, err := r.split(name)
	if err != nil {
		return openFile{fd: -1}, err
	}
	fd, err := unix.Openat(dir, base, r.fileFlags, 0)
	if errors.Is(err, unix.EPERM) && r.fileFlags&unix.O_NOATIME != 0 {
		// O_NOATIME needs the file's owner or CAP_FOWNER: do without.
		r.fileFlags &^= unix.O_NOATIME
		fd, err = unix.Openat(dir, base, r.fileFlags, 0)
	}
	if err != nil {
		return openFile{fd: -1}, fmt.Errorf("open %s in %s: %w", name, r.dir, err)
	}
	f := openFile{fd: fd, dir: r.dir, name: name}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		f.close()
		return openFile{fd: -1}, fmt.Errorf("stat %s: %w", f.full(), err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG || !sameStat(&st, want) {
		f.close()
		return openFile{fd: -1}, fmt.Errorf("%s changed while the diff was written", f.full())
	}
	if r.upper {
		if f.xattrs, err = r.upperFileXattrs(fd); err != nil {
			f.close()
			if errors.Is(err, errOverlayMeta) {
				return openFile{fd: -1}, err
			}
			return openFile{fd: -1}, fmt.Errorf("xattrs of %s: %w", f.full(), err)
		}
		f.xattrsRead = true
	}
	return f, nil
}

// fileXattrs returns the xattrs of the open file f: those openChecked
// read, else read now.
func (r *rootFS) fileXattrs(f openFile) ([]xattr, error) {
	if f.xattrsRead {
		return f.xattrs, nil
	}
	return r.fdXattrs(f.fd)
}

// readMeta reads the symlink target (of a symlink) and the xattrs of name,
// whose walk FileInfo is f. A directory's xattrs are read from it opened
// (it becomes the cached directory, the parent of the entries that
// follow it in the walk).
func (r *rootFS) readMeta(name string, f os.FileInfo) prepared {
	var p prepared
	if f.Mode()&os.ModeSymlink != 0 {
		if p.link, p.err = r.Readlink(name); p.err != nil {
			return p
		}
	}
	if f.IsDir() {
		if fd, err := r.openDir(path.Clean(name)); err == nil {
			p.xattrs, p.err = r.fdXattrs(fd)
			if p.err != nil {
				p.err = fmt.Errorf("xattrs of %s in %s: %w", name, r.dir, p.err)
			}
			return p
		}
		// Not readable (a non-root writer, mode 0): read it by name.
	}
	p.xattrs, p.err = r.Xattrs(name)
	return p
}

// ReadSmall reads the whole content of the small regular file name into
// buf (len(buf) is the size the walk saw, want) and returns its xattrs,
// with the checks of openChecked: open, fstat, the xattr calls, read and
// close, nothing else.
func (r *rootFS) ReadSmall(name string, want os.FileInfo, buf []byte) ([]xattr, error) {
	f, err := r.openChecked(name, want)
	if err != nil {
		return nil, err
	}
	defer f.close()
	xattrs, err := r.fileXattrs(f)
	if err != nil {
		return nil, fmt.Errorf("xattrs of %s: %w", f.full(), err)
	}
	if n, err := f.readFull(buf); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, errShrank(f.full(), int64(len(buf)), int64(n))
		}
		return nil, err
	}
	return xattrs, nil
}

// openFile is a regular file of the tree opened by openChecked; fd is -1
// when none is.
type openFile struct {
	fd        int
	dir, name string // the tree and the file's name in it
	// xattrs are the file's xattrs when xattrsRead (an upperdir's file,
	// whose xattrs openChecked reads).
	xattrs     []xattr
	xattrsRead bool
}

// full returns the file's path, for messages.
func (f openFile) full() string { return path.Join(f.dir, f.name) }

// close closes the file, if open.
func (f openFile) close() {
	if f.fd >= 0 {
		_ = unix.Close(f.fd)
	}
}

// readFull reads len(buf) bytes of the file into buf. It returns the
// bytes read and io.ErrUnexpectedEOF when the file ends first.
func (f openFile) readFull(buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := unix.Read(f.fd, buf[n:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return n, fmt.Errorf("copy %s: %w", f.full(), err)
		}
		if m == 0 {
			return n, io.ErrUnexpectedEOF
		}
		n += m
	}
	return n, nil
}

// openWithXattrs opens the regular file name, checked against its walk
// FileInfo f, and reads its xattrs from it: one open for the xattrs and
// the content. The caller closes the file.
func (r *rootFS) openWithXattrs(name string, f os.FileInfo) (openFile, prepared) {
	file, err := r.openChecked(name, f)
	if err != nil {
		return file, prepared{err: err}
	}
	xattrs, err := r.fileXattrs(file)
	if err != nil {
		file.close()
		return openFile{fd: -1}, prepared{err: fmt.Errorf("xattrs of %s: %w", file.full(), err)}
	}
	return file, prepared{xattrs: xattrs}
}

// sameStat reports whether g, the stat of an opened file, is the entry the
// walk saw as want: the same inode, size, modification time and type.
// Devices are not compared: a change source may walk an overlay upperdir
// and have entries read from an overlay view of it, which shows the same
// inodes under its own device (as BuildKit's overlay differ does).
func sameStat(g *syscall.Stat_t, want os.FileInfo) bool {
	w, ok := want.Sys().(*syscall.Stat_t)
	return ok && g.Ino == w.Ino && g.Size == w.Size && g.Mtim == w.Mtim && g.Mode&syscall.S_IFMT == w.Mode&syscall.S_IFMT
}

// Readlink returns the target of the symlink name.
func (r *rootFS) Readlink(name string) (string, error) {
	dir, base, err := r.split(name)
	if err != nil {
		return "", err
	}
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dir, base, buf)
		if err != nil {
			return "", fmt.Errorf("readlink %s in %s: %w", name, r.dir, err)
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// Xattrs returns the extended attributes of name (not following it), all
// namespaces (or only security.capability with capOnly), sorted by name. A
// filesystem without xattr support gives none.
func (r *rootFS) Xattrs(name string) ([]xattr, error) {
	p := path.Join(r.dir, name)
	if r.procFD {
		dir, base, err := r.split(name)
		if err != nil {
			return nil, err
		}
		p = "/proc/self/fd/" + strconv.Itoa(dir) + "/" + base
	}
	out, err := r.readXattrs(
		func(buf []byte) (int, error) { return unix.Llistxattr(p, buf) },
		func(n string, buf []byte) (int, error) { return unix.Lgetxattr(p, n, buf) })
	if err != nil {
		return nil, fmt.Errorf("xattrs of %s in %s: %w", name, r.dir, err)
	}
	return out, nil
}

// fdXattrs returns the extended attributes of the open file fd, as Xattrs.
func (r *rootFS) fdXattrs(fd int) ([]xattr, error) {
	return r.readXattrs(
		func(b []byte) (int, error) { return unix.Flistxattr(fd, b) },
		func(n string, b []byte) (int, error) { return unix.Fgetxattr(fd, n, b) })
}
