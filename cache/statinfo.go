package cache

import (
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// statInfo is the os.FileInfo of a stat made on a raw descriptor, the same
// as os.Lstat's for the same stat: the tar header of an entry depends only
// on its Name, Mode, ModTime, Size and Sys.
type statInfo struct {
	name string
	st   syscall.Stat_t
}

var _ os.FileInfo = (*statInfo)(nil)

// Name returns the base name.
func (s *statInfo) Name() string { return s.name }

// Size returns the size in bytes.
func (s *statInfo) Size() int64 { return s.st.Size }

// Mode returns the mode as os.Lstat computes it.
func (s *statInfo) Mode() os.FileMode {
	m := os.FileMode(s.st.Mode & 0o777)
	switch s.st.Mode & syscall.S_IFMT {
	case syscall.S_IFBLK:
		m |= os.ModeDevice
	case syscall.S_IFCHR:
		m |= os.ModeDevice | os.ModeCharDevice
	case syscall.S_IFDIR:
		m |= os.ModeDir
	case syscall.S_IFIFO:
		m |= os.ModeNamedPipe
	case syscall.S_IFLNK:
		m |= os.ModeSymlink
	case syscall.S_IFSOCK:
		m |= os.ModeSocket
	}
	if s.st.Mode&syscall.S_ISGID != 0 {
		m |= os.ModeSetgid
	}
	if s.st.Mode&syscall.S_ISUID != 0 {
		m |= os.ModeSetuid
	}
	if s.st.Mode&syscall.S_ISVTX != 0 {
		m |= os.ModeSticky
	}
	return m
}

// ModTime returns the modification time.
func (s *statInfo) ModTime() time.Time { return time.Unix(s.st.Mtim.Unix()) }

// IsDir reports whether the entry is a directory.
func (s *statInfo) IsDir() bool { return s.st.Mode&syscall.S_IFMT == syscall.S_IFDIR }

// Sys returns the *syscall.Stat_t.
func (s *statInfo) Sys() any { return &s.st }

// fstatat lstats name in the open directory dir into s: x/sys/unix has
// the call on every architecture, syscall not on amd64, and both
// packages' Stat_t are the kernel's struct stat, field for field.
func (s *statInfo) fstatat(dir int, name string) error {
	s.name = name
	return unix.Fstatat(dir, name, (*unix.Stat_t)(unsafe.Pointer(&s.st)), unix.AT_SYMLINK_NOFOLLOW)
}

// The two Stat_t have the same size (a compile-time check).
var (
	_ [unsafe.Sizeof(unix.Stat_t{}) - unsafe.Sizeof(syscall.Stat_t{})]byte
	_ [unsafe.Sizeof(syscall.Stat_t{}) - unsafe.Sizeof(unix.Stat_t{})]byte
)
