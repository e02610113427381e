package soci

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"maps"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// TestTarTable: the table built from a tar pushed in pieces of any size
// has each entry's name, type, data offset and header fields as Go's tar
// reader (soci-snapshotter's builder) sees them: GNU long names and links,
// PAX records and xattrs, a global header, every entry type.
func TestTarTable(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	long := strings.Repeat("d/", 70) + "file"
	mt := time.Unix(1700000000, 123456789)
	hdrs := []*tar.Header{
		{Typeflag: tar.TypeXGlobalHeader, Name: "global", PAXRecords: map[string]string{"comment": "g"}},
		{Name: "dir/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mt, Format: tar.FormatPAX},
		{Name: long, Typeflag: tar.TypeReg, Mode: 0o644, Size: 5, ModTime: mt, Format: tar.FormatGNU},
		{Name: "gnu-link", Typeflag: tar.TypeSymlink, Linkname: long, ModTime: mt, Format: tar.FormatGNU},
		{Name: "x", Typeflag: tar.TypeReg, Size: 1000, Uid: 1 << 22, ModTime: mt, Format: tar.FormatPAX,
			PAXRecords: map[string]string{"SCHILY.xattr.user.a": "1", "SCHILY.xattr.security.capability": "\x00\x01"}},
		{Name: "hard", Typeflag: tar.TypeLink, Linkname: "x", ModTime: mt},
		{Name: "dev", Typeflag: tar.TypeBlock, Devmajor: 8, Devminor: 1, ModTime: mt},
		{Name: "empty", Typeflag: tar.TypeReg, ModTime: mt},
	}
	for _, h := range hdrs {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write(bytes.Repeat([]byte{'z'}, int(h.Size)))
		}
	}
	tw.Close()
	data := buf.Bytes()

	var want []File
	cr := &countingReader{r: bytes.NewReader(data)}
	tr := tar.NewReader(cr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if typ, ok := fileType(h.Typeflag); ok {
			want = append(want, File{Name: h.Name, Type: typ, Offset: cr.n, Size: h.Size, Linkname: h.Linkname, UID: h.Uid, PAX: h.PAXRecords})
		}
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		var tab tarTable
		for q := data; len(q) > 0; {
			n := min(len(q), 1+r.IntN(1500))
			tab.Write(q[:n])
			q = q[n:]
		}
		got, size, err := tab.finish()
		if err != nil {
			t.Fatal(err)
		}
		if size != cr.n || len(got) != len(want) {
			t.Fatalf("size %d, %d entries; want %d, %d", size, len(got), cr.n, len(want))
		}
		for i, w := range want {
			g := got[i]
			if g.Name != w.Name || g.Type != w.Type || g.Offset != w.Offset || g.Size != w.Size || g.Linkname != w.Linkname || g.UID != w.UID || !maps.Equal(g.PAX, w.PAX) {
				t.Fatalf("entry %d: %+v, want %+v", i, g, w)
			}
		}
		if got[4].ModTime.Location() != time.UTC {
			t.Errorf("mod time %v not in UTC", got[4].ModTime)
		}
	}
}

// TestParseSize: octal and base-256 size fields.
func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"00000001750\x00": 1000, "           \x00": 0, "\x80\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x00": 2 << 32} {
		if got, err := parseSize([]byte(in)); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	if _, err := parseSize([]byte("12x")); err == nil {
		t.Error("a bad size field parsed")
	}
}
