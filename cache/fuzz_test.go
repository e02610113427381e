package cache

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

func FuzzFilterTar(f *testing.F) {
	for _, hdrs := range [][]*tar.Header{
		{{Name: "a/", Typeflag: tar.TypeDir}, {Name: "a/b", Typeflag: tar.TypeReg, Size: 3, ModTime: time.Unix(2e9, 5)}},
		{{Name: "../x", Typeflag: tar.TypeReg}},
		{{Name: "l", Typeflag: tar.TypeLink, Linkname: "/etc/passwd"}},
		{{Name: "x", Typeflag: tar.TypeReg, Format: tar.FormatPAX, PAXRecords: map[string]string{"SCHILY.xattr.user.a": "b"}}},
	} {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, h := range hdrs {
			if err := tw.WriteHeader(h); err != nil {
				f.Fatal(err)
			}
			_, _ = tw.Write(make([]byte, h.Size))
		}
		_ = tw.Close()
		f.Add(buf.Bytes())
	}
	f.Add([]byte("garbage"))
	epoch := time.Unix(1e9, 0)
	f.Fuzz(func(t *testing.T, data []byte) {
		var out bytes.Buffer
		if err := filterTar(context.Background(), &out, bytes.NewReader(data), nil); err == nil && !bytes.Equal(out.Bytes(), data) {
			t.Fatal("validated stream differs from its input")
		}
		out.Reset()
		if err := filterTar(context.Background(), &out, bytes.NewReader(data), &epoch); err != nil {
			return
		}
		tr := tar.NewReader(&out)
		for {
			hdr, err := tr.Next()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				t.Fatalf("clamped stream unreadable: %v", err)
			}
			if err := validateEntry(hdr); err != nil {
				t.Fatalf("clamped stream has a bad entry: %v", err)
			}
			if hdr.ModTime.After(epoch) || hdr.AccessTime.After(epoch) || hdr.ChangeTime.After(epoch) {
				t.Fatalf("entry %q not clamped: %s %s %s", hdr.Name, hdr.ModTime, hdr.AccessTime, hdr.ChangeTime)
			}
		}
	})
}
