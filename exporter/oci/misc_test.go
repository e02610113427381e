package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lade-build/lade/exporter/archive/archivetest"
)

// tarNames returns a tar's entry names, failing unless every entry has
// mtime, uid 0, gid 0 and no owner names.
func tarNames(t *testing.T, data []byte, mtime time.Time) []string {
	t.Helper()
	var names []string
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		if !h.ModTime.Equal(mtime) || h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
			t.Fatalf("tar entry %s: mtime %v uid %d gid %d %q/%q", h.Name, h.ModTime, h.Uid, h.Gid, h.Uname, h.Gname)
		}
		names = append(names, h.Name)
	}
}

// TestRefuseForeignDir checks a non-empty directory that is not a layout is refused.
func TestRefuseForeignDir(t *testing.T) {
	cs := archivetest.NewStore(t)
	img := archivetest.Build(t, cs, archivetest.Spec{Layers: 1})
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := WriteLayout(context.Background(), cs, img.Root, dir, Options{})
	if err == nil || !strings.Contains(err.Error(), "not an OCI layout") {
		t.Fatalf("WriteLayout into a foreign directory: %v", err)
	}
	empty := t.TempDir()
	if err := WriteLayout(context.Background(), cs, img.Root, empty, Options{}); err != nil {
		t.Fatalf("WriteLayout into an empty directory: %v", err)
	}
}

// TestOptionsValidate checks which name lists are valid.
func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		names []string
		ok    bool
	}{
		{nil, true},
		{[]string{"foo", "foo:latest", "docker.io/library/foo"}, true},
		{[]string{"foo:1", "bar:1"}, false},
		{[]string{"Foo"}, false},
		{[]string{"foo@sha256:" + strings.Repeat("a", 64)}, false},
	} {
		if err := (Options{Names: tc.names}).Validate(); (err == nil) != tc.ok {
			t.Errorf("names %v: Validate() = %v, want ok=%v", tc.names, err, tc.ok)
		}
	}
}

// TestReadTarHostile checks hostile or broken archives fail the import.
func TestReadTarHostile(t *testing.T) {
	layout := []archivetest.Entry{{Name: "oci-layout", Data: []byte(`{"imageLayoutVersion":"1.0.0"}`)}}
	for name, tc := range map[string]struct {
		entries []archivetest.Entry
		want    string
	}{
		"dot-dot":       {append(layout, archivetest.Entry{Name: "blobs/../../evil", Data: []byte("x")}), `".." elements`},
		"absolute":      {append(layout, archivetest.Entry{Name: "/etc/evil", Data: []byte("x")}), "absolute"},
		"link outside":  {append(layout, archivetest.Entry{Name: "index.json", Type: tar.TypeSymlink, Link: "../../index.json"}), "index.json"},
		"link absolute": {append(layout, archivetest.Entry{Name: "index.json", Type: tar.TypeSymlink, Link: "/tmp/index.json"}), "index.json"},
		"not a layout":  {[]archivetest.Entry{{Name: "index.json", Data: []byte(`{}`)}}, "not an OCI layout"},
		"bad blob": {append(layout,
			archivetest.Entry{Name: "index.json", Data: []byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:` + strings.Repeat("0", 64) + `","size":2}]}`)},
			archivetest.Entry{Name: "blobs/sha256/" + strings.Repeat("0", 64), Data: []byte("{}")}), "does not match"},
	} {
		file := filepath.Join(t.TempDir(), "bad.tar")
		archivetest.WriteTar(t, file, tc.entries)
		_, err := ReadTar(context.Background(), file, "", archivetest.NewStore(t))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: ReadTar error %v, want one containing %q", name, err, tc.want)
		}
	}
}
