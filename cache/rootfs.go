package cache

import (
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// rootFS reads entries of a directory tree by paths relative to its root
// without following a symlink out of it: the parent directory of an entry is
// opened through an os.Root (which never leaves the root), and the entry
// itself is opened, read as a link, or asked for xattrs relative to that
// directory without following it. It is not safe for concurrent use.
type rootFS struct {
	dir  string
	root *os.Root
	// The parent directory of the last entry, cached: entries come in walk
	// order, so consecutive entries mostly share it.
	parentName string
	parent     *os.File
	// procFD is true when /proc/self/fd resolves, which the xattr calls use
	// to name an entry relative to an open directory.
	procFD bool
}

func openRootFS(dir string) (*rootFS, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open directory %s: %w", dir, err)
	}
	_, err = os.Stat("/proc/self/fd")
	return &rootFS{dir: dir, root: root, procFD: err == nil}, nil
}

// Close releases the open directories.
func (r *rootFS) Close() error {
	if r.parent != nil {
		_ = r.parent.Close()
		r.parent = nil
	}
	return r.root.Close()
}

// split returns the open parent directory of name (slash-separated, relative
// to the root, not "." or "") and name's base.
func (r *rootFS) split(name string) (*os.File, string, error) {
	dir, base := path.Split(name)
	dir = path.Clean("./" + dir)
	if base == "" || base == "." || base == ".." {
		return nil, "", fmt.Errorf("invalid entry name %q", name)
	}
	if r.parent != nil && r.parentName == dir {
		return r.parent, base, nil
	}
	if r.parent != nil {
		_ = r.parent.Close()
		r.parent = nil
	}
	f, err := r.root.Open(dir)
	if err != nil {
		return nil, "", fmt.Errorf("open directory %s in %s: %w", dir, r.dir, err)
	}
	r.parent, r.parentName = f, dir
	return f, base, nil
}

// Lstat stats name without following it.
func (r *rootFS) Lstat(name string) (os.FileInfo, error) {
	return r.root.Lstat(name)
}

// OpenRegular opens name for reading, refusing a symlink, and checks that it
// is still the regular file want that the walk saw (see sameStat).
func (r *rootFS) OpenRegular(name string, want os.FileInfo) (*os.File, error) {
	fd, full, err := r.openChecked(name, want)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), full), nil
}

// openChecked opens name read-only relative to its parent, without
// following it, and checks with fstat that it is the regular file want.
// It returns the raw descriptor and the file's full name.
func (r *rootFS) openChecked(name string, want os.FileInfo) (int, string, error) {
	dir, base, err := r.split(name)
	if err != nil {
		return -1, "", err
	}
	fd, err := unix.Openat(int(dir.Fd()), base, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, "", fmt.Errorf("open %s in %s: %w", name, r.dir, err)
	}
	full := path.Join(r.dir, name)
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		_ = unix.Close(fd)
		return -1, "", fmt.Errorf("stat %s: %w", full, err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG || !sameStat(&st, want) {
		_ = unix.Close(fd)
		return -1, "", fmt.Errorf("%s changed while the diff was written", full)
	}
	return fd, full, nil
}

// readMeta reads the symlink target (of a symlink) and the xattrs of name,
// whose walk FileInfo is f.
func (r *rootFS) readMeta(name string, f os.FileInfo) prepared {
	var p prepared
	if f.Mode()&os.ModeSymlink != 0 {
		if p.link, p.err = r.Readlink(name); p.err != nil {
			return p
		}
	}
	p.xattrs, p.err = r.Xattrs(name)
	return p
}

// ReadSmall reads the whole content of the small regular file name into
// buf (len(buf) is the size the walk saw, want) and returns its xattrs,
// with the checks of OpenRegular. It works on the raw descriptor: open,
// fstat, the xattr calls, read and close, nothing else (os.File would add
// the poller's fcntl and epoll calls, a measurable share of a tree of
// small files).
func (r *rootFS) ReadSmall(name string, want os.FileInfo, buf []byte) ([]xattr, error) {
	fd, full, err := r.openChecked(name, want)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	xattrs, err := readXattrs(
		func(b []byte) (int, error) { return unix.Flistxattr(fd, b) },
		func(n string, b []byte) (int, error) { return unix.Fgetxattr(fd, n, b) })
	if err != nil {
		return nil, fmt.Errorf("xattrs of %s: %w", full, err)
	}
	for n := 0; n < len(buf); {
		m, err := unix.Read(fd, buf[n:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("copy %s: %w", full, err)
		}
		if m == 0 {
			return nil, errShrank(full, int64(len(buf)), int64(n))
		}
		n += m
	}
	return xattrs, nil
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
		n, err := unix.Readlinkat(int(dir.Fd()), base, buf)
		if err != nil {
			return "", fmt.Errorf("readlink %s in %s: %w", name, r.dir, err)
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// Xattrs returns the extended attributes of name (not following it), all
// namespaces, sorted by name. A filesystem without xattr support gives none.
func (r *rootFS) Xattrs(name string) ([]xattr, error) {
	p := path.Join(r.dir, name)
	if r.procFD {
		dir, base, err := r.split(name)
		if err != nil {
			return nil, err
		}
		p = "/proc/self/fd/" + strconv.Itoa(int(dir.Fd())) + "/" + base
	}
	out, err := readXattrs(
		func(buf []byte) (int, error) { return unix.Llistxattr(p, buf) },
		func(n string, buf []byte) (int, error) { return unix.Lgetxattr(p, n, buf) })
	if err != nil {
		return nil, fmt.Errorf("xattrs of %s in %s: %w", name, r.dir, err)
	}
	return out, nil
}

// readXattrs reads every xattr through list and get (the l- or f- system
// calls), sorted by name; none when the filesystem has no xattrs.
func readXattrs(list func([]byte) (int, error), get func(string, []byte) (int, error)) ([]xattr, error) {
	names, err := listXattrs(list)
	if err != nil {
		return nil, fmt.Errorf("list xattrs: %w", err)
	}
	out := make([]xattr, 0, len(names))
	for _, n := range names {
		v, err := getXattr(get, n)
		if errors.Is(err, unix.ENODATA) {
			continue // removed since listed
		}
		if err != nil {
			return nil, fmt.Errorf("get xattr %s: %w", n, err)
		}
		out = append(out, xattr{Name: n, Value: v})
	}
	return out, nil
}

// xattr is one extended attribute.
type xattr struct {
	Name  string
	Value []byte
}

// listXattrs lists the xattr names through list, sorted; none when
// unsupported.
func listXattrs(list func([]byte) (int, error)) ([]string, error) {
	for {
		size, err := list(nil)
		if isNoXattr(err) || (err == nil && size == 0) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		buf := make([]byte, size)
		n, err := list(buf)
		if errors.Is(err, unix.ERANGE) {
			continue // grew meanwhile
		}
		if err != nil {
			return nil, err
		}
		var names []string
		for _, b := range splitNul(buf[:n]) {
			names = append(names, string(b))
		}
		slices.Sort(names)
		return names, nil
	}
}

// getXattr reads one xattr through get.
func getXattr(get func(string, []byte) (int, error), name string) ([]byte, error) {
	for {
		size, err := get(name, nil)
		if err != nil {
			return nil, err
		}
		buf := make([]byte, size)
		n, err := get(name, buf)
		if errors.Is(err, unix.ERANGE) {
			continue // grew meanwhile
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

func isNoXattr(err error) bool {
	return errors.Is(err, unix.ENOTSUP)
}

func splitNul(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		i := slices.Index(b, 0)
		if i < 0 {
			i = len(b)
		}
		if i > 0 {
			out = append(out, b[:i])
		}
		if i == len(b) {
			break
		}
		b = b[i+1:]
	}
	return out
}
