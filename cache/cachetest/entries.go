package cachetest

import (
	"archive/tar"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
)

// Entry is what the suite compares of one tar entry.
type Entry struct {
	Name     string
	Type     byte
	Mode     int64
	Linkname string
	Size     int64
	// Digest is the sha256 of the content, empty for entries without any.
	Digest  digest.Digest
	ModTime time.Time
	// AccessTime and ChangeTime are zero unless the tar records them.
	AccessTime, ChangeTime time.Time
	Uid, Gid               int
	// Xattrs are the SCHILY.xattr PAX records, without the prefix.
	Xattrs map[string]string
}

// String renders the entry on one line, for comparisons and messages.
func (e Entry) String() string {
	s := fmt.Sprintf("%s type=%c mode=%o uid=%d gid=%d size=%d mtime=%s", e.Name, e.Type, e.Mode,
		e.Uid, e.Gid, e.Size, e.ModTime.UTC().Format(time.RFC3339Nano))
	if e.Linkname != "" {
		s += " link=" + e.Linkname
	}
	if e.Digest != "" {
		s += " content=" + e.Digest.Encoded()[:12]
	}
	if !e.AccessTime.IsZero() || !e.ChangeTime.IsZero() {
		s += fmt.Sprintf(" atime=%s ctime=%s", e.AccessTime.UTC().Format(time.RFC3339Nano), e.ChangeTime.UTC().Format(time.RFC3339Nano))
	}
	for _, k := range sortedKeys(e.Xattrs) {
		s += fmt.Sprintf(" xattr:%s=%q", k, e.Xattrs[k])
	}
	return s
}

// ReadEntries lists the entries of a tar stream, reading it to EOF.
func ReadEntries(r io.Reader) ([]Entry, error) {
	var out []Entry
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return out, err
		}
		e := Entry{
			Name: hdr.Name, Type: hdr.Typeflag, Mode: hdr.Mode, Linkname: hdr.Linkname,
			Size: hdr.Size, ModTime: hdr.ModTime, AccessTime: hdr.AccessTime, ChangeTime: hdr.ChangeTime,
			Uid: hdr.Uid, Gid: hdr.Gid,
		}
		for k, v := range hdr.PAXRecords {
			if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				if e.Xattrs == nil {
					e.Xattrs = map[string]string{}
				}
				e.Xattrs[name] = v
			}
		}
		h := sha256.New()
		n, err := io.Copy(h, tr)
		if err != nil {
			return out, fmt.Errorf("read %s: %w", hdr.Name, err)
		}
		if n > 0 {
			e.Digest = digest.NewDigest(digest.SHA256, h)
		}
		out = append(out, e)
	}
	// The rest must be padding.
	_, err := io.Copy(io.Discard, r)
	return out, err
}

// ExpectedLower returns the entries of the bottom layer of fx (all of
// Lower), in containerd's order.
func ExpectedLower(fx Fixture) []Entry {
	hard1 := fileEntry("usr/lib/hard1", 0o644, "hardlinked\n", fx.Old)
	return []Entry{
		dirEntry("bin/", 0o755, fx.Old),
		fileEntry("bin/sh", 0o755, "#!/bin/sh\necho hi\n", fx.Old),
		fileEntry("empty", 0o600, "", fx.Old),
		dirEntry("etc/", 0o755, fx.Old),
		fileEntry("etc/hostname", 0o644, "lower-host\n", fx.Old),
		fileEntry("etc/passwd", 0o644, "root:x:0:0:root:/root:/bin/sh\n", fx.Old),
		dirEntry("tmp/", 0o1777, fx.Old),
		dirEntry("usr/", 0o755, fx.Old),
		dirEntry("usr/lib/", 0o755, fx.Old),
		fileEntry("usr/lib/big.bin", 0o644, bigData, fx.Old),
		hard1,
		linkEntry("usr/lib/hard2", hard1),
		fileEntry("usr/lib/"+longName, 0o644, "long name\n", fx.Old),
		dirEntry("var/", 0o755, fx.Old),
		dirEntry("var/cache/", 0o755, fx.Old),
		fileEntry("var/cache/x.txt", 0o644, "cached\n", fx.Old),
		dirEntry("var/log/", 0o755, fx.Old),
	}
}

// ExpectedUpper returns the entries of the top layer of fx (Lower to
// Upper), in containerd's order: unchanged parents of changes included,
// whiteouts for deletions (one for a deleted directory), hard links to the
// first name written, even for unmodified names sharing a new link's inode.
func ExpectedUpper(fx Fixture) []Entry {
	conf, confTime := "setting=1\n", fx.New
	if fx.Variant != 0 {
		conf, confTime = "setting=2 (variant)\n", fx.New.Add(time.Second)
	}
	dataA := fileEntry("data/a", 0o640, "shared\n", fx.New)
	hard3 := fileEntry("usr/lib/hard3", 0o644, "hardlinked\n", fx.Old)
	return []Entry{
		dirEntry("bin/", 0o755, fx.New),
		symlinkEntry("bin/ash", "sh", fx.New),
		dirEntry("data/", 0o750, fx.New),
		dataA,
		linkEntry("data/b", dataA),
		dirEntry("etc/", 0o755, fx.New),
		fileEntry("etc/hostname", 0o644, "upper-host\n", fx.New),
		fileEntry("etc/new.conf", 0o600, conf, confTime),
		whiteoutEntry("etc/.wh.passwd"),
		symlinkEntry("lib64", "/usr/lib", fx.New),
		dirEntry("run/", 0o755, fx.New),
		{Name: "run/ctl.fifo", Type: tar.TypeFifo, Mode: 0o644, ModTime: sec(fx.New), Uid: os.Geteuid(), Gid: os.Getegid()},
		dirEntry("usr/", 0o755, fx.Old),
		dirEntry("usr/lib/", 0o755, fx.New),
		hard3,
		linkEntry("usr/lib/hard1", hard3),
		linkEntry("usr/lib/hard2", hard3),
		dirEntry("var/", 0o755, fx.New),
		whiteoutEntry("var/.wh.cache"),
	}
}

func sec(t time.Time) time.Time { return t.Truncate(time.Second) }

func dirEntry(name string, mode int64, t time.Time) Entry {
	return Entry{Name: name, Type: tar.TypeDir, Mode: mode, ModTime: sec(t), Uid: os.Geteuid(), Gid: os.Getegid()}
}

func fileEntry(name string, mode int64, data string, t time.Time) Entry {
	e := Entry{Name: name, Type: tar.TypeReg, Mode: mode, Size: int64(len(data)), ModTime: sec(t),
		Uid: os.Geteuid(), Gid: os.Getegid()}
	if data != "" {
		e.Digest = digest.FromString(data)
	}
	return e
}

func symlinkEntry(name, target string, t time.Time) Entry {
	return Entry{Name: name, Type: tar.TypeSymlink, Mode: 0o777, Linkname: target, ModTime: sec(t),
		Uid: os.Geteuid(), Gid: os.Getegid()}
}

func linkEntry(name string, src Entry) Entry {
	src.Name, src.Type, src.Linkname, src.Size, src.Digest = name, tar.TypeLink, src.Name, 0, ""
	return src
}

func whiteoutEntry(name string) Entry {
	// containerd's whiteout headers carry zero atime and ctime too, but
	// without a header format archive/tar does not write them.
	return Entry{Name: name, Type: tar.TypeReg, ModTime: time.Unix(0, 0)}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
