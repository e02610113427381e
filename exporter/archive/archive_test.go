package archive

import (
	"archive/tar"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestParseName checks name normalization and the names refused.
func TestParseName(t *testing.T) {
	for in, want := range map[string]Name{
		"foo":                  {"docker.io/library/foo:latest", "foo:latest", "latest"},
		"foo:1.2":              {"docker.io/library/foo:1.2", "foo:1.2", "1.2"},
		"reg:5000/team/foo:v1": {"reg:5000/team/foo:v1", "reg:5000/team/foo:v1", "v1"},
		"docker.io/x/y":        {"docker.io/x/y:latest", "x/y:latest", "latest"},
	} {
		got, err := ParseName(in)
		if err != nil || got != want {
			t.Errorf("ParseName(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "UPPER", "foo@sha256:" + strings.Repeat("a", 64), "foo:bad tag"} {
		if _, err := ParseName(bad); err == nil {
			t.Errorf("ParseName(%q) succeeded", bad)
		}
	}
	names, err := ParseNames([]string{"foo", "foo:latest", "bar"})
	if err != nil || len(names) != 2 {
		t.Fatalf("ParseNames dedup: %v %v", names, err)
	}
}

// TestIndexEntriesAndMerge checks index.json entries, their merge by ref name and SelectManifest.
func TestIndexEntriesAndMerge(t *testing.T) {
	d := func(s string) ocispec.Descriptor {
		return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromString(s), Size: 1}
	}
	created := time.Date(2024, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))
	names, _ := ParseNames([]string{"a:1", "b:2"})
	old := append(IndexEntries(d("old"), names, nil), IndexEntries(d("anon"), nil, nil)...)
	one, _ := ParseNames([]string{"c:1"})
	add := append(IndexEntries(d("new"), one, &created), IndexEntries(d("anon"), nil, nil)...)
	got := MergeIndex(old, add)
	if len(got) != 3 || got[0].Annotations[ocispec.AnnotationRefName] != "2" || got[1].Digest != d("new").Digest || got[2].Annotations != nil {
		t.Fatalf("MergeIndex = %+v", got)
	}
	if got[1].Annotations[ocispec.AnnotationCreated] != "2024-01-02T02:04:05Z" || got[1].Annotations[AnnotationImageName] != "docker.io/library/c:1" {
		t.Fatalf("annotations %v", got[1].Annotations)
	}
	// An index-descriptor annotation asking for a created time wins
	// (BuildKit's TestExportAnnotations).
	asked := d("asked")
	asked.Annotations = map[string]string{ocispec.AnnotationCreated: "2022-01-23T12:34:56Z"}
	if e := IndexEntries(asked, one, &created); e[0].Annotations[ocispec.AnnotationCreated] != "2022-01-23T12:34:56Z" {
		t.Fatalf("created annotation asked for was overwritten: %v", e[0].Annotations)
	}
	if _, err := SelectManifest(ocispec.Index{Manifests: got}, "1"); err != nil {
		t.Fatalf("SelectManifest by tag: %v", err)
	}
	if sel, err := SelectManifest(ocispec.Index{Manifests: got}, "c"); err == nil {
		t.Fatalf("SelectManifest(c) matched %v: c means c:latest", sel)
	}
	if sel, err := SelectManifest(ocispec.Index{Manifests: got}, "c:1"); err != nil || len(sel.Annotations) != 1 {
		t.Fatalf("SelectManifest(c:1) = %+v, %v", sel, err)
	}
}

// TestTarFileLinks checks that links alias regular files inside the archive only.
func TestTarFileLinks(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h *tar.Header, data string) {
		h.Size = int64(len(data))
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		tw.WriteHeader(h)
		tw.Write([]byte(data))
	}
	add(&tar.Header{Name: "./a/file", Typeflag: tar.TypeReg}, "content")
	add(&tar.Header{Name: "b/sym", Typeflag: tar.TypeSymlink, Linkname: "../a/file"}, "")
	add(&tar.Header{Name: "b/hard", Typeflag: tar.TypeLink, Linkname: "a/file"}, "")
	add(&tar.Header{Name: "b/escape", Typeflag: tar.TypeSymlink, Linkname: "../../etc/passwd"}, "")
	add(&tar.Header{Name: "b/abs", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}, "")
	add(&tar.Header{Name: "b/dir", Typeflag: tar.TypeDir}, "")
	tw.Close()
	file := filepath.Join(t.TempDir(), "x.tar")
	os.WriteFile(file, buf.Bytes(), 0o644)
	tf, err := OpenTar(file)
	if err != nil {
		t.Fatal(err)
	}
	defer tf.Close()
	for _, name := range []string{"a/file", "b/sym", "b/hard"} {
		if b, err := tf.ReadFile(name); err != nil || string(b) != "content" {
			t.Errorf("ReadFile(%s) = %q, %v", name, b, err)
		}
	}
	for _, name := range []string{"b/escape", "b/abs", "b/dir", "nothing"} {
		if _, err := tf.ReadFile(name); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ReadFile(%s): %v, want not exist", name, err)
		}
	}
}
