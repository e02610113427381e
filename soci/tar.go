package soci

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

const (
	blockSize = 512
	// maxHeaderGroup bounds the extended headers of one entry.
	maxHeaderGroup = 64 << 20
)

// File is one entry of a zTOC's file table, as soci-snapshotter's builder
// records it from Go's archive/tar.
type File struct {
	Name string
	// Type is reg, dir, symlink, hardlink, char, block or fifo.
	Type string
	// Offset is where the entry's data starts in the uncompressed tar.
	Offset int64
	// Size is the header's size.
	Size     int64
	Linkname string
	Mode     int64
	UID, GID int
	Uname    string
	Gname    string
	ModTime  time.Time
	Devmajor int64
	Devminor int64
	// PAX holds the entry's PAX records (xattrs as SCHILY.xattr.*).
	PAX map[string]string
}

// tarTable builds the file table of a tar stream pushed through Write, as
// it passes: it keeps the header blocks of one entry (with its extended
// headers) and skips file data.
type tarTable struct {
	files  []File
	pos    int64  // bytes seen
	skip   int64  // data bytes left to skip
	need   int64  // bytes left to collect into group
	group  []byte // the current entry's header blocks and extended data
	inData bool   // group is collecting an extended header's data
	zeros  int    // end-of-archive blocks seen
	end    int64  // offset after the second zero block
	err    error
}

// Write consumes p; it never fails, an error is kept for finish.
func (t *tarTable) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 && t.err == nil && t.zeros < 2 {
		if t.skip > 0 {
			k := min(t.skip, int64(len(p)))
			t.skip -= k
			t.pos += k
			p = p[k:]
			continue
		}
		if t.need == 0 {
			t.need = blockSize
		}
		k := min(t.need, int64(len(p)))
		t.group = append(t.group, p[:k]...)
		t.need -= k
		t.pos += k
		p = p[k:]
		if t.need == 0 {
			t.err = t.collected()
		}
	}
	t.pos += int64(len(p))
	return n, nil
}

// collected handles group once the bytes asked for are in: a header block
// (extended, terminal or zero) or an extended header's data.
func (t *tarTable) collected() error {
	if len(t.group) > maxHeaderGroup {
		return fmt.Errorf("tar entry at offset %d has over %d bytes of extended headers", t.pos, maxHeaderGroup)
	}
	if t.inData {
		// The extended data is in; the next block is a header again.
		t.inData = false
		return nil
	}
	hdr := t.group[len(t.group)-blockSize:]
	if t.zeros == 1 || (len(t.group) == blockSize && isZero(hdr)) {
		t.zeros++
		t.group = t.group[:0]
		t.end = t.pos
		return nil
	}
	switch hdr[156] {
	case tar.TypeXHeader, tar.TypeXGlobalHeader, tar.TypeGNULongName, tar.TypeGNULongLink:
		size, err := parseSize(hdr[124:136])
		if err != nil {
			return fmt.Errorf("tar header at offset %d: %w", t.pos-blockSize, err)
		}
		t.need, t.inData = roundBlock(size), size > 0
		return nil
	}
	return t.entry()
}

// entry parses the group, now ending with a terminal header, with Go's
// tar reader and records the entry.
func (t *tarTable) entry() error {
	tr := tar.NewReader(bytes.NewReader(t.group))
	hdr, err := tr.Next()
	for err == nil && hdr.Typeflag == tar.TypeXGlobalHeader {
		hdr, err = tr.Next()
	}
	group := len(t.group)
	t.group = t.group[:0]
	if err != nil {
		return fmt.Errorf("tar header at offset %d: %w", t.pos-int64(group), err)
	}
	data := hdr.Size
	switch hdr.Typeflag {
	case tar.TypeLink, tar.TypeSymlink, tar.TypeChar, tar.TypeBlock, tar.TypeDir, tar.TypeFifo:
		data = 0
	}
	if data < 0 {
		return fmt.Errorf("tar entry %q has negative size %d", hdr.Name, data)
	}
	t.skip = roundBlock(data)
	typ, ok := fileType(hdr.Typeflag)
	if !ok {
		return fmt.Errorf("tar entry %q has type %q, which a zTOC cannot describe: build the layer without soci", hdr.Name, hdr.Typeflag)
	}
	t.files = append(t.files, File{
		Name: hdr.Name, Type: typ, Offset: t.pos, Size: hdr.Size, Linkname: hdr.Linkname,
		Mode: hdr.Mode, UID: hdr.Uid, GID: hdr.Gid, Uname: hdr.Uname, Gname: hdr.Gname,
		ModTime: hdr.ModTime.UTC(), Devmajor: hdr.Devmajor, Devminor: hdr.Devminor, PAX: hdr.PAXRecords,
	})
	return nil
}

// finish returns the table and the tar's size as soci-snapshotter counts
// it (through the end-of-archive blocks).
func (t *tarTable) finish() ([]File, int64, error) {
	if t.err != nil {
		return nil, 0, t.err
	}
	if t.zeros < 2 {
		return nil, 0, errors.New("tar stream ends without its end-of-archive blocks")
	}
	return t.files, t.end, nil
}

// fileType names a tar type as soci-snapshotter does.
func fileType(flag byte) (string, bool) {
	switch flag {
	case tar.TypeReg, tar.TypeRegA:
		return "reg", true
	case tar.TypeLink:
		return "hardlink", true
	case tar.TypeSymlink:
		return "symlink", true
	case tar.TypeDir:
		return "dir", true
	case tar.TypeChar:
		return "char", true
	case tar.TypeBlock:
		return "block", true
	case tar.TypeFifo:
		return "fifo", true
	}
	return "", false
}

// parseSize reads a tar numeric field: octal, or base-256 when its first
// byte has the high bit set.
func parseSize(b []byte) (int64, error) {
	if len(b) > 0 && b[0]&0x80 != 0 {
		var v int64
		for i, c := range b {
			if i == 0 {
				c &= 0x7f
			}
			if v > (1<<55)-1 {
				return 0, errors.New("size field overflows")
			}
			v = v<<8 | int64(c)
		}
		return v, nil
	}
	s := strings.Trim(string(b), " \x00")
	if s == "" {
		return 0, nil
	}
	v, err := strconv.ParseInt(s, 8, 64)
	if err != nil {
		return 0, fmt.Errorf("bad size field %q", s)
	}
	return v, nil
}

func roundBlock(n int64) int64 {
	return (n + blockSize - 1) / blockSize * blockSize
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
