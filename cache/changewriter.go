package cache

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/pkg/archive/tarheader"
	"github.com/containerd/continuity/fs"
	"golang.org/x/sys/unix"
)

const (
	// whiteoutPrefix marks a deleted entry in an OCI layer.
	whiteoutPrefix = ".wh."
	// paxSchilyXattr prefixes the PAX records holding xattrs.
	paxSchilyXattr = "SCHILY.xattr."
)

// changeWriter writes the changes reported by continuity's fs.Changes as an
// OCI layer tar. It follows containerd's archive.ChangeWriter (v2.3.6) byte
// for byte except that it keeps every xattr instead of only
// security.capability; see DIFF.md.
type changeWriter struct {
	tw        *tar.Writer
	root      *trees
	epoch     *time.Time
	inodeSrc  map[uint64]string   // inode -> first name written
	inodeRefs map[uint64][]string // inode -> unmodified names to link later
	addedDirs map[string]struct{}
	// keepXattr chooses the xattrs written; nil keeps every one.
	keepXattr func(name string) bool
}

// capabilityXattr is the one xattr containerd's archive writes (and so
// BuildKit's differs): security.selinux, user.* and the rest are dropped.
const capabilityXattr = "security.capability"

// onlyCapability is the keepXattr of a writer matching containerd's.
func onlyCapability(name string) bool { return name == capabilityXattr }

func newChangeWriter(w io.Writer, root *trees, epoch *time.Time) *changeWriter {
	return &changeWriter{
		tw:        tar.NewWriter(w),
		root:      root,
		epoch:     epoch,
		inodeSrc:  map[uint64]string{},
		inodeRefs: map[uint64][]string{},
		addedDirs: map[string]struct{}{},
	}
}

// handleChange writes one change. p is the path relative to the root, with
// a leading separator for changes from the walk.
func (cw *changeWriter) handleChange(ctx context.Context, k fs.ChangeKind, p string, f os.FileInfo, err error) error {
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if k == fs.ChangeKindDelete {
		return cw.writeWhiteout(ctx, p)
	}
	return cw.writeEntry(ctx, k, p, f, nil)
}

// writeChange writes one change of the read-ahead pipeline, with what a
// reader prepared for it (when one did).
func (cw *changeWriter) writeChange(ctx context.Context, c *change) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if c.k == fs.ChangeKindDelete {
		return cw.writeWhiteout(ctx, c.p)
	}
	var pre *prepared
	if c.read {
		pre = &c.prepared
	}
	return cw.writeEntry(ctx, c.k, c.p, c.f, pre)
}

// writeWhiteout writes ".wh.<base>" for a deleted path, with zero
// timestamps as containerd v2 does.
func (cw *changeWriter) writeWhiteout(ctx context.Context, p string) error {
	name := filepath.Join(filepath.Dir(p), whiteoutPrefix+filepath.Base(p))
	t := time.Unix(0, 0).UTC()
	hdr := &tar.Header{
		Typeflag:   tar.TypeReg,
		Name:       strings.TrimPrefix(filepath.ToSlash(name), "/"),
		ModTime:    t,
		AccessTime: t,
		ChangeTime: t,
	}
	if err := cw.includeParents(ctx, hdr); err != nil {
		return err
	}
	if err := cw.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write whiteout header %s: %w", hdr.Name, err)
	}
	return nil
}

// writeEntry writes an added, modified or (hard-linked) unmodified entry.
// pre, when not nil, holds the entry's symlink target, xattrs and (for a
// small file) content, read ahead; otherwise they are read here: a large
// regular file is opened once, for its xattrs and its content.
func (cw *changeWriter) writeEntry(ctx context.Context, k fs.ChangeKind, p string, f os.FileInfo, pre *prepared) error {
	if f.Mode()&os.ModeSocket != 0 {
		return nil // sockets cannot be archived
	}
	name := strings.TrimPrefix(filepath.ToSlash(p), "/")
	// Hard links first: an unmodified name is written later or never, so
	// nothing of it is read now. linkSrc is the name this entry links to;
	// additionalLinks are unmodified names sharing this entry's inode
	// that must be linked to it once it is written.
	var linkSrc string
	var additionalLinks []string
	if inode, isHardlink := fs.GetLinkInfo(f); isHardlink {
		if src, ok := cw.inodeSrc[inode]; ok {
			linkSrc = src
		} else {
			if k == fs.ChangeKindUnmodified {
				cw.inodeRefs[inode] = append(cw.inodeRefs[inode], name)
				return nil
			}
			cw.inodeSrc[inode] = name
			additionalLinks = cw.inodeRefs[inode]
			delete(cw.inodeRefs, inode)
		}
	} else if k == fs.ChangeKindUnmodified {
		return nil
	}
	file := openFile{fd: -1}
	if pre == nil {
		var p prepared
		if writerOpens(f) {
			file, p = cw.root.openWithXattrs(name, f)
			defer file.close()
		} else {
			p = cw.root.readMeta(name, f)
		}
		if p.err != nil {
			return p.err
		}
		pre = &p
	}
	hdr, err := cw.header(name, f, pre.link)
	if err != nil {
		return err
	}
	if linkSrc != "" {
		hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, linkSrc, 0
	}
	addXattrs(hdr, pre.xattrs, cw.keepXattr)
	if err := cw.includeParents(ctx, hdr); err != nil {
		return err
	}
	if err := cw.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write header %s: %w", hdr.Name, err)
	}
	if hdr.Typeflag == tar.TypeReg && hdr.Size > 0 {
		if pre.data != nil && int64(len(pre.data)) == hdr.Size {
			if _, err := cw.tw.Write(pre.data); err != nil {
				return fmt.Errorf("write %s: %w", hdr.Name, err)
			}
		} else if err := cw.copyFile(ctx, file, name, f, hdr.Size); err != nil {
			return err
		}
	}
	return cw.writeLinks(ctx, hdr, additionalLinks)
}

// header builds the tar header of one entry as containerd does: no user or
// group names, PAX, mtime clamped to the epoch then truncated to seconds,
// no atime or ctime.
// link is the target of a symlink.
func (cw *changeWriter) header(name string, f os.FileInfo, link string) (*tar.Header, error) {
	hdr, err := tarheader.FileInfoHeaderNoLookups(f, link)
	if err != nil {
		return nil, fmt.Errorf("tar header of %s: %w", name, err)
	}
	hdr.Format = tar.FormatPAX
	if cw.epoch != nil && hdr.ModTime.After(*cw.epoch) {
		hdr.ModTime = *cw.epoch
	}
	hdr.ModTime = hdr.ModTime.Truncate(time.Second)
	hdr.AccessTime = time.Time{}
	hdr.ChangeTime = time.Time{}
	if f.IsDir() && !strings.HasSuffix(name, "/") {
		name += "/"
	}
	hdr.Name = name
	if st, ok := f.Sys().(*syscall.Stat_t); ok && st.Mode&(syscall.S_IFBLK|syscall.S_IFCHR) != 0 {
		hdr.Devmajor = int64(unix.Major(st.Rdev))
		hdr.Devminor = int64(unix.Minor(st.Rdev))
	}
	return hdr, nil
}

// addXattrs records the xattrs keep accepts (all when keep is nil) as
// SCHILY.xattr PAX records.
func addXattrs(hdr *tar.Header, xattrs []xattr, keep func(string) bool) {
	for _, x := range xattrs {
		if keep != nil && !keep(x.Name) {
			continue
		}
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords[paxSchilyXattr+x.Name] = string(x.Value)
	}
}

// copyFile writes size bytes of the regular file name, read from file
// when it is open, else opened here.
func (cw *changeWriter) copyFile(ctx context.Context, file openFile, name string, f os.FileInfo, size int64) error {
	if file.fd < 0 {
		var err error
		if file, err = cw.root.openChecked(name, f); err != nil {
			return err
		}
		defer file.close()
	}
	buf := tarBufs.Get() // a few large reads per file, not one per 32 KiB
	defer tarBufs.Put(buf)
	for left := size; left > 0; {
		if err := ctx.Err(); err != nil {
			return err
		}
		chunk := buf[:min(left, int64(len(buf)))]
		if n, err := file.readFull(chunk); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return errShrank(file.full(), size, size-left+int64(n))
			}
			return err
		}
		if _, err := cw.tw.Write(chunk); err != nil {
			return fmt.Errorf("copy %s: %w", file.full(), err)
		}
		left -= int64(len(chunk))
	}
	return nil
}

// writeLinks writes hard links to hdr's entry for names seen unmodified
// before it.
func (cw *changeWriter) writeLinks(ctx context.Context, hdr *tar.Header, names []string) error {
	src := hdr.Name
	for _, extra := range names {
		hdr.Name, hdr.Typeflag, hdr.Linkname, hdr.Size = extra, tar.TypeLink, src, 0
		if err := cw.includeParents(ctx, hdr); err != nil {
			return err
		}
		if err := cw.tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("write header %s: %w", hdr.Name, err)
		}
	}
	return nil
}

// includeParents writes the parent directory of hdr (and, recursively, its
// parents) before hdr when it was not written yet, and remembers written
// directories.
func (cw *changeWriter) includeParents(ctx context.Context, hdr *tar.Header) error {
	name := strings.TrimRight(hdr.Name, "/")
	parent := path.Dir(name)
	if name != "" && name != "." && parent != "." {
		if _, ok := cw.addedDirs[parent]; !ok {
			cw.addedDirs[parent] = struct{}{}
			fi, err := cw.root.Lstat(parent)
			if err != nil {
				return fmt.Errorf("stat parent directory %s: %w", parent, err)
			}
			if !fi.IsDir() {
				return errors.New("parent " + parent + " of " + name + " is not a directory")
			}
			if err := cw.handleChange(ctx, fs.ChangeKindModify, parent, fi, nil); err != nil {
				return err
			}
		}
	}
	if hdr.Typeflag == tar.TypeDir {
		cw.addedDirs[name] = struct{}{}
	}
	return nil
}

// Close writes the end of the archive.
func (cw *changeWriter) Close() error {
	if err := cw.tw.Close(); err != nil {
		return fmt.Errorf("close tar writer: %w", err)
	}
	return nil
}
