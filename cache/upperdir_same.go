package cache

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// sameDirent reports whether an upperdir entry (upper, path p) is the same
// as base's entry at p (b), as BuildKit's overlay differ decides it (its
// sameDirent, continuity's comparison): the same file; or the same mode,
// owner, device and security.capability and, for a non-directory, the
// same size and modification time, where a time without nanoseconds on
// both sides (as unpacked from a tar) needs the same symlink target or
// content. Capabilities and contents are read through base and the view,
// as BuildKit reads them.
func (w *upperWalker) sameDirent(b *unix.Stat_t, upper *upperInfo, p string) (bool, error) {
	u := &upper.st
	if b.Dev == u.Dev && b.Ino == u.Ino {
		return true, nil
	}
	if b.Mode != u.Mode || b.Uid != u.Uid || b.Gid != u.Gid || b.Rdev != u.Rdev {
		return false, nil
	}
	basePath, viewPath := filepath.Join(w.base, p), filepath.Join(w.view, p)
	if eq, err := sameCapability(basePath, viewPath); err != nil || !eq {
		return eq, err
	}
	if b.Mode&unix.S_IFMT == unix.S_IFDIR {
		return true, nil
	}
	if b.Size != u.Size || b.Mtim.Sec != u.Mtim.Sec {
		return false, nil
	}
	if b.Mtim.Nsec != 0 || u.Mtim.Nsec != 0 {
		return b.Mtim.Nsec == u.Mtim.Nsec, nil
	}
	switch {
	case b.Mode&unix.S_IFMT == unix.S_IFLNK:
		return sameLinkTarget(basePath, viewPath)
	case b.Size == 0:
		return true, nil
	}
	return sameContent(basePath, viewPath)
}

// sameCapability compares the security.capability xattrs of two paths
// (none on either side counts as empty).
func sameCapability(p1, p2 string) (bool, error) {
	var caps [2][]byte
	for i, p := range []string{p1, p2} {
		var small [64]byte
		v, err := getXattr(func(n string, b []byte) (int, error) { return unix.Lgetxattr(p, n, b) }, capabilityXattr, small[:])
		if err != nil && !errors.Is(err, unix.ENODATA) {
			return false, fmt.Errorf("failed to get xattr for %s: %w", p, err)
		}
		caps[i] = v
	}
	return bytes.Equal(caps[0], caps[1]), nil
}

// sameLinkTarget compares the targets of two symlinks.
func sameLinkTarget(p1, p2 string) (bool, error) {
	t1, err := os.Readlink(p1)
	if err != nil {
		return false, err
	}
	t2, err := os.Readlink(p2)
	if err != nil {
		return false, err
	}
	return t1 == t2, nil
}

// sameContent compares the contents of two regular files.
func sameContent(p1, p2 string) (bool, error) {
	var files [2]*os.File
	for i, p := range []string{p1, p2} {
		f, err := os.Open(p)
		if err != nil {
			return false, err
		}
		defer f.Close()
		if st, err := f.Stat(); err != nil {
			return false, err
		} else if !st.Mode().IsRegular() {
			return false, fmt.Errorf("%s is not a regular file", p)
		}
		files[i] = f
	}
	b1, b2 := make([]byte, 32<<10), make([]byte, 32<<10)
	for {
		n1, err1 := io.ReadFull(files[0], b1)
		if err1 != nil && !errors.Is(err1, io.EOF) && !errors.Is(err1, io.ErrUnexpectedEOF) {
			return false, err1
		}
		n2, err2 := io.ReadFull(files[1], b2)
		if err2 != nil && !errors.Is(err2, io.EOF) && !errors.Is(err2, io.ErrUnexpectedEOF) {
			return false, err2
		}
		if n1 != n2 || !bytes.Equal(b1[:n1], b2[:n2]) {
			return false, nil
		}
		if err1 != nil && err2 != nil {
			return true, nil
		}
	}
}
