package reliability

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lade-build/lade/exporter/unpack"
	"github.com/lade-build/lade/internal/testutil"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

// Names in the tree that test path limits.
var (
	// longName is a file name of 150 bytes (a plain tar header holds 100).
	longName = strings.Repeat("n", 146) + ".txt"
	// longDir is a directory path of over 300 bytes.
	longDir = filepath.Join("long", strings.Repeat("d", 60), strings.Repeat("e", 60), strings.Repeat("f", 60),
		strings.Repeat("g", 60), strings.Repeat("h", 60))
	// badName and badDir are not UTF-8.
	badName = "bad-\xff\xfe.txt"
	badDir  = "dir-\xc3\x28"
)

// capNetRaw is a security.capability value (VFS_CAP_REVISION_2, effective)
// granting CAP_NET_RAW.
func capNetRaw() []byte {
	b := make([]byte, 20)
	binary.LittleEndian.PutUint32(b[0:], 0x02000000|0x1)
	binary.LittleEndian.PutUint32(b[4:], 1<<unix.CAP_NET_RAW)
	return b
}

// treeLayers is the input of TestTreeRoundTrip.
type treeLayers struct {
	l1, l2  string // directory snapshots
	opaque  string // layer tarball making opq/ opaque
	expect  string // the tree the image must unpack to
	opqTime time.Time
}

// buildTree writes the layers. l1 is a small root filesystem; l2 is l1
// with every kind of change and file; the tarball replaces opq/'s content.
func buildTree(t *testing.T) treeLayers {
	t.Helper()
	dir := t.TempDir()
	tl := treeLayers{l1: filepath.Join(dir, "l1"), l2: filepath.Join(dir, "l2"),
		opaque: filepath.Join(dir, "opaque.tar"), expect: filepath.Join(dir, "expect"),
		opqTime: time.Date(2023, 5, 6, 7, 8, 9, 0, time.UTC)}
	p1 := func(rel string) string { return filepath.Join(tl.l1, rel) }
	writeFile(t, p1("etc/hello"), "hello\n", 0o644)
	writeFile(t, p1("etc/gone"), "deleted in layer 2\n", 0o644)
	writeFile(t, p1("var/olddir/sub/f"), "whole directory deleted in layer 2\n", 0o644)
	writeFile(t, p1("data/orig"), "hardlinked in layer 2\n", 0o644)
	writeFile(t, p1("opq/keep-a"), "hidden by the opaque layer\n", 0o644)
	writeFile(t, p1("opq/sub/b"), "hidden by the opaque layer\n", 0o644)
	must(t, unix.Setxattr(p1("etc/hello"), "user.lade.layer", []byte("1"), 0))

	cpTree(t, tl.l1, tl.l2)
	p := func(rel string) string { return filepath.Join(tl.l2, rel) }
	mkdir := func(rel string) { must(t, os.MkdirAll(p(rel), 0o755)) }
	// deletions
	must(t, os.Remove(p("etc/gone")))
	must(t, os.RemoveAll(p("var/olddir")))
	// hard links: across layers (data/orig is layer 1's) and within one
	must(t, os.Link(p("data/orig"), p("data/orig-link")))
	writeFile(t, p("data/a"), "one inode, two names\n", 0o644)
	must(t, os.Link(p("data/a"), p("data/b")))
	// symlinks
	mkdir("links")
	for name, target := range map[string]string{
		"abs": "/etc/hello", "rel": "../etc/hello", "dangling": "/does/not/exist",
		"loop-a": "loop-b", "loop-b": "loop-a", "dir": "../etc",
	} {
		must(t, os.Symlink(target, p("links/"+name)))
	}
	// xattrs
	writeFile(t, p("xattr/file"), "with xattrs\n", 0o644)
	must(t, unix.Setxattr(p("xattr/file"), "user.lade.test", []byte("value"), 0))
	must(t, unix.Setxattr(p("xattr/file"), "user.lade.binary", []byte{0, 1, 2, 0xff}, 0))
	must(t, unix.Setxattr(p("xattr"), "user.lade.dir", []byte("on a directory"), 0))
	writeFile(t, p("xattr/cap"), "capable\n", 0o755)
	must(t, unix.Setxattr(p("xattr/cap"), "security.capability", capNetRaw(), 0))
	// a sparse file: data at the start, in the middle and at the end
	sparse, err := os.Create(p("sparse/file"))
	if os.IsNotExist(err) {
		mkdir("sparse")
		sparse, err = os.Create(p("sparse/file"))
	}
	must(t, err)
	must(t, sparse.Truncate(16<<20))
	for _, off := range []int64{0, 8 << 20, 16<<20 - 5} {
		_, err := sparse.WriteAt([]byte("data!"), off)
		must(t, err)
	}
	must(t, sparse.Close())
	// device nodes and a fifo
	mkdir("dev")
	must(t, syscall.Mknod(p("dev/null"), syscall.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(t, syscall.Mknod(p("dev/loop200"), syscall.S_IFBLK|0o660, int(unix.Mkdev(7, 200))))
	must(t, syscall.Mkfifo(p("dev/fifo"), 0o644))
	must(t, os.Chmod(p("dev/null"), 0o666))
	must(t, os.Chmod(p("dev/fifo"), 0o644))
	// uid and gid beyond ustar's 2^21 (before any chmod: chown clears setuid)
	writeFile(t, p("owners/big"), "big ids\n", 0o644)
	must(t, os.Lchown(p("owners/big"), 3000000, 3000001))
	mkdir("owners/bigdir")
	must(t, os.Lchown(p("owners/bigdir"), 3000000, 3000000))
	must(t, os.Symlink("big", p("owners/biglink")))
	must(t, os.Lchown(p("owners/biglink"), 3000002, 3000003))
	writeFile(t, p("owners/suid-big"), "setuid, big owner\n", 0o755)
	must(t, os.Lchown(p("owners/suid-big"), 3000000, 3000000))
	must(t, os.Chmod(p("owners/suid-big"), os.ModeSetuid|os.ModeSetgid|0o755))
	// special permission bits
	writeFile(t, p("modes/setuid"), "setuid\n", os.ModeSetuid|0o755)
	writeFile(t, p("modes/setgid"), "setgid\n", os.ModeSetgid|0o750)
	writeFile(t, p("modes/all"), "every bit\n", os.ModeSetuid|os.ModeSetgid|os.ModeSticky|0o777)
	writeFile(t, p("modes/none"), "no bits\n", 0)
	mkdir("modes/sticky")
	must(t, os.Chmod(p("modes/sticky"), os.ModeSticky|0o777))
	mkdir("modes/setgid-dir")
	must(t, os.Chmod(p("modes/setgid-dir"), os.ModeSetgid|0o775))
	// long and non-UTF-8 names
	writeFile(t, p(filepath.Join(longDir, "deep.txt")), "deep\n", 0o644)
	writeFile(t, p(filepath.Join("long", longName)), "long name\n", 0o644)
	writeFile(t, p(filepath.Join("names", badName)), "not utf-8\n", 0o644)
	writeFile(t, p(filepath.Join("names", badDir, "inner")), "in a non-utf-8 directory\n", 0o644)
	// timestamps: before 1970 is not portable; far future and sub-second
	writeFile(t, p("times/y2100"), "future\n", 0o644)
	must(t, os.Chtimes(p("times/y2100"), time.Unix(4102444800, 0), time.Unix(4102444800, 0)))
	writeFile(t, p("times/nanos"), "sub-second\n", 0o644)
	must(t, os.Chtimes(p("times/nanos"), time.Unix(1600000000, 999999999), time.Unix(1600000000, 999999999)))

	// The opaque layer: opq/ keeps only "new".
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdrs := []*tar.Header{
		{Name: "opq/", Typeflag: tar.TypeDir, Mode: 0o750, Uid: 7, Gid: 8},
		{Name: "opq/.wh..wh..opq", Typeflag: tar.TypeReg},
		{Name: "opq/new", Typeflag: tar.TypeReg, Mode: 0o640, Uid: 7, Gid: 8, Size: 4},
	}
	for _, h := range hdrs {
		h.ModTime, h.Format = tl.opqTime, tar.FormatPAX
		must(t, tw.WriteHeader(h))
	}
	_, err = tw.Write([]byte("new\n"))
	must(t, err)
	must(t, tw.Close())
	must(t, os.WriteFile(tl.opaque, buf.Bytes(), 0o644))

	// What the image must unpack to: l2, opq/ replaced.
	cpTree(t, tl.l2, tl.expect)
	e := func(rel string) string { return filepath.Join(tl.expect, rel) }
	must(t, os.RemoveAll(e("opq")))
	writeFile(t, e("opq/new"), "new\n", 0o640)
	must(t, os.Lchown(e("opq/new"), 7, 8))
	must(t, os.Lchown(e("opq"), 7, 8))
	must(t, os.Chmod(e("opq"), 0o750))
	must(t, os.Chtimes(e("opq/new"), tl.opqTime, tl.opqTime))
	must(t, os.Chtimes(e("opq"), tl.opqTime, tl.opqTime))
	return tl
}

// TestTreeRoundTrip exports, with the CLI, two directory snapshots and a
// layer tarball holding every kind of file metadata: hard links (within a
// layer and to a file of the layer below), symlinks (absolute, relative,
// dangling, a loop), deletions of a file and a directory, an opaque
// directory (.wh..wh..opq), xattrs (user.* on a file and a directory,
// security.capability), a sparse file, character and block devices, a
// fifo, setuid/setgid/sticky bits, a path over 255 bytes, a 150-byte name,
// names that are not UTF-8, uid/gid above 2^21, mtimes in 2100 and with
// nanoseconds. The image, written to the store and to an OCI layout, is
// unpacked by umoci and by lade's exporter/unpack; each result must equal
// the expected tree in content, type, mode (special bits included),
// owner, symlink target, hard link sameness, xattrs, device numbers and
// mtime (whole seconds).
func TestTreeRoundTrip(t *testing.T) {
	testutil.RequireTool(t, "umoci")
	tl := buildTree(t)
	root := filepath.Join(t.TempDir(), "store")
	c := newCLI(t, root)
	out := t.TempDir()
	layout := filepath.Join(out, "layout")
	c.ok("export", "--progress", "quiet", "--platform", "linux/amd64",
		"-o", "type=image,name=tree:1", "-o", "type=oci,tar=false,dest="+layout+",name=tree:1",
		tl.l1, tl.l2, tl.opaque)
	want := scanTree(t, tl.expect, scanOptions{})

	bundle := filepath.Join(out, "bundle")
	testutil.Run(t, "umoci", "unpack", "--image", layout+":1", bundle)
	compareTrees(t, "umoci unpack", want, scanTree(t, filepath.Join(bundle, "rootfs"), scanOptions{}))

	s := openStore(t, root)
	img, err := s.GetImage(context.Background(), "tree:1")
	must(t, err)
	dir := filepath.Join(out, "unpacked")
	amd64 := ocispec.Platform{OS: "linux", Architecture: "amd64"}
	must(t, unpack.Unpack(context.Background(), s.Content(), img.Target, dir, unpack.Options{Platform: &amd64}))
	compareTrees(t, "lade unpack", want, scanTree(t, dir, scanOptions{}))
}
