package zstdchunked

import (
	"archive/tar"
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// testFile is one entry of a test tree.
type testFile struct {
	hdr  tar.Header
	data []byte
}

// randomBytes returns n incompressible bytes, the same for the same seed.
func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// holey is data with zero runs: long ones (zeros chunks), one just
// below the threshold, one at it, and zeros at the end.
func holey() []byte {
	var b bytes.Buffer
	b.Write(randomBytes(1, 3000))
	b.Write(make([]byte, 64<<10))
	b.WriteString("middle")
	b.Write(make([]byte, holesThreshold-1))
	b.WriteString("x")
	b.Write(make([]byte, holesThreshold))
	b.Write(randomBytes(2, 100))
	b.Write(make([]byte, 8<<10))
	return b.Bytes()
}

// testTree has every kind of entry lade writes: directories, small,
// empty, large compressible and incompressible files, files with holes
// and made of zeros only, hardlinks, symlinks, devices, a fifo, xattrs,
// names and link targets over 100 bytes, whiteouts.
func testTree() []testFile {
	mt := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	long := strings.Repeat("long-directory-name/", 8) + "file-with-a-long-name.txt"
	text := []byte(strings.Repeat("lorem ipsum dolor sit amet, consectetur adipiscing elit\n", 40000))
	reg := func(name string, data []byte) testFile {
		return testFile{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: mt, Uid: 1000, Gid: 1000, Format: tar.FormatPAX}, data: data}
	}
	other := func(typ byte, name, link string, mode int64) testFile {
		return testFile{hdr: tar.Header{Typeflag: typ, Name: name, Linkname: link, Mode: mode, ModTime: mt, Format: tar.FormatPAX}}
	}
	xattr := reg("etc/capable", []byte("binary with capabilities"))
	xattr.hdr.PAXRecords = map[string]string{"SCHILY.xattr.security.capability": "\x01\x00\x00\x02\x00\x20", "SCHILY.xattr.user.note": "hello"}
	dev := other(tar.TypeChar, "dev/null", "", 0o666)
	dev.hdr.Devmajor, dev.hdr.Devminor = 1, 3
	withAtime := reg("etc/times", []byte("times"))
	withAtime.hdr.AccessTime, withAtime.hdr.ChangeTime = mt.Add(time.Hour), mt.Add(2*time.Hour)
	return []testFile{
		other(tar.TypeDir, "etc/", "", 0o755),
		reg("etc/hello", []byte("hello, world\n")),
		reg("etc/empty", nil),
		xattr,
		withAtime,
		other(tar.TypeLink, "etc/hello-link", "etc/hello", 0),
		other(tar.TypeSymlink, "etc/hello-sym", "hello", 0o777),
		other(tar.TypeSymlink, "etc/long-sym", long, 0o777),
		dev,
		other(tar.TypeFifo, "run/fifo", "", 0o600),
		reg("data/random", randomBytes(3, 700<<10)),
		reg("data/text", text),
		reg("data/holey", holey()),
		reg("data/zeros", make([]byte, 32<<10)),
		reg("data/short-zeros", make([]byte, 100)),
		reg(long, []byte("long name")),
		reg("gone/.wh.removed", nil),
		reg("opaque/.wh..wh..opq", nil),
	}
}

// makeTar writes files as a tar, closed with its end-of-archive blocks.
func makeTar(t testing.TB, files []testFile) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, f := range files {
		h := f.hdr
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("tar header %s: %v", h.Name, err)
		}
		if _, err := tw.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// compress writes tarball through a Writer with klauspost's encoder in
// pieces of the given sizes (repeated), and returns the blob and its
// annotations.
func compress(t testing.TB, tarball []byte, level int, pieces ...int) ([]byte, map[string]string) {
	t.Helper()
	return compressWith(t, tarball, level, false, pieces...)
}

// compressWith is compress with libzstd's frames when native is set.
func compressWith(t testing.TB, tarball []byte, level int, native bool, pieces ...int) ([]byte, map[string]string) {
	t.Helper()
	var out bytes.Buffer
	w, err := NewWriter(&out, level, native)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; len(tarball) > 0; i++ {
		n := len(tarball)
		if len(pieces) > 0 {
			n = min(n, pieces[i%len(pieces)])
		}
		if _, err := w.Write(tarball[:n]); err != nil {
			t.Fatalf("write: %v", err)
		}
		tarball = tarball[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	return out.Bytes(), w.Annotations()
}
