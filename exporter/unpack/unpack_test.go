package unpack_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/lade-build/lade/cache"
	"github.com/lade-build/lade/exporter"
	"github.com/lade-build/lade/exporter/unpack"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func newStore(t *testing.T) content.Store {
	s, err := local.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func write(t *testing.T, s content.Store, mt string, b []byte) ocispec.Descriptor {
	d := ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(b), Size: int64(len(b))}
	if err := content.WriteBlob(context.Background(), s, d.Digest.String(), bytes.NewReader(b), d); err != nil {
		t.Fatal(err)
	}
	return d
}

// rawImage stores an image whose layers are the given tars, as they are.
func rawImage(t *testing.T, s content.Store, layers ...[]byte) ocispec.Descriptor {
	var descs []ocispec.Descriptor
	var diffIDs []digest.Digest
	for _, l := range layers {
		descs = append(descs, write(t, s, ocispec.MediaTypeImageLayer, l))
		diffIDs = append(diffIDs, digest.FromBytes(l))
	}
	cfg, _ := json.Marshal(ocispec.Image{Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"}, RootFS: ocispec.RootFS{Type: "layers", DiffIDs: diffIDs}})
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: write(t, s, ocispec.MediaTypeImageConfig, cfg), Layers: descs}
	m.SchemaVersion = 2
	mb, _ := json.Marshal(m)
	return write(t, s, ocispec.MediaTypeImageManifest, mb)
}

type entry struct {
	name, link, body string
	typ              byte
}

func tarOf(t *testing.T, es ...entry) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: 0o644, Size: int64(len(e.body))}
		if e.typ == tar.TypeDir {
			h.Mode = 0o755
		}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	return buf.Bytes()
}

// TestUnpackRoundTrip: export directory snapshots, unpack, get the top
// snapshot back (content, modes, symlinks, hard links, deletions).
func TestUnpackRoundTrip(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l1, l2 := filepath.Join(dir, "l1"), filepath.Join(dir, "l2")
	for _, root := range []string{l1, l2} {
		os.MkdirAll(filepath.Join(root, "bin"), 0o755)
		os.WriteFile(filepath.Join(root, "bin/tool"), []byte("tool"), 0o755)
		os.Symlink("tool", filepath.Join(root, "bin/alias"))
		os.Link(filepath.Join(root, "bin/tool"), filepath.Join(root, "bin/hard"))
	}
	os.WriteFile(filepath.Join(l1, "gone"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(l2, "new"), []byte("new"), 0o755)
	os.Chmod(filepath.Join(l2, "new"), os.ModeSetuid|0o755)
	r1, _ := cache.NewDirRef(l1, nil, cache.DirOptions{})
	r2, _ := cache.NewDirRef(l2, r1, cache.DirOptions{})
	s := newStore(t)
	res, err := exporter.NewImageWriter(s).Commit(ctx, exporter.Source{Platforms: []exporter.PlatformSource{{Platform: "linux/arm64", Ref: r2}}}, exporter.Options{})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "rootfs")
	arm := ocispec.Platform{OS: "linux", Architecture: "arm64"}
	if err := unpack.Unpack(ctx, s, res.Descriptor, out, unpack.Options{Platform: &arm}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(out, "gone")); !os.IsNotExist(err) {
		t.Errorf("deleted file is back: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(out, "new")); err != nil || fi.Mode()&os.ModeSetuid == 0 {
		t.Errorf("setuid file: %v %v", fi, err)
	}
	if l, err := os.Readlink(filepath.Join(out, "bin/alias")); err != nil || l != "tool" {
		t.Errorf("symlink: %q %v", l, err)
	}
	a, _ := os.Stat(filepath.Join(out, "bin/tool"))
	b, _ := os.Stat(filepath.Join(out, "bin/hard"))
	if !os.SameFile(a, b) {
		t.Error("hard link lost")
	}
	if err := unpack.Unpack(ctx, s, res.Descriptor, out, unpack.Options{Platform: &arm}); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("unpack into a non-empty dir: %v", err)
	}
}

// TestUnpackHostile: hostile layers never write outside the root.
func TestUnpackHostile(t *testing.T) {
	ctx := context.Background()
	cases := map[string][]byte{
		"dotdot":             tarOf(t, entry{name: "../../escape", body: "x", typ: tar.TypeReg}),
		"absolute":           tarOf(t, entry{name: "/escape", body: "x", typ: tar.TypeReg}),
		"symlink-then-write": tarOf(t, entry{name: "link", link: "OUTSIDE", typ: tar.TypeSymlink}, entry{name: "link/escape", body: "x", typ: tar.TypeReg}),
		"hardlink-out":       tarOf(t, entry{name: "hl", link: "../../OUTSIDE/victim", typ: tar.TypeLink}),
		"symlink-parent":     tarOf(t, entry{name: "up", link: "../..", typ: tar.TypeSymlink}, entry{name: "up/escape", body: "x", typ: tar.TypeReg}),
	}
	for name, layer := range cases {
		t.Run(name, func(t *testing.T) {
			base := t.TempDir()
			outside := filepath.Join(base, "outside")
			os.MkdirAll(outside, 0o755)
			os.WriteFile(filepath.Join(outside, "victim"), []byte("safe"), 0o644)
			root := filepath.Join(base, "a", "b", "root")
			l := []byte(strings.ReplaceAll(string(layer), "OUTSIDE", outside))
			if strings.Contains(name, "symlink-then") || strings.Contains(name, "hardlink") {
				// rebuild with the real outside path (tar checksums)
				l = rebuild(t, layer, outside)
			}
			s := newStore(t)
			err := unpack.Unpack(ctx, s, rawImage(t, s, l), root, unpack.Options{})
			t.Logf("%s: %v", name, err)
			filepath.Walk(base, func(p string, fi os.FileInfo, _ error) error {
				if fi != nil && fi.Name() == "escape" && !strings.HasPrefix(p, root+"/") {
					t.Errorf("%s written outside the root", p)
				}
				return nil
			})
			if b, _ := os.ReadFile(filepath.Join(outside, "victim")); string(b) != "safe" {
				t.Errorf("victim changed: %q", b)
			}
			if _, err := os.Stat(filepath.Join(base, "escape")); err == nil {
				t.Error("escape at the base")
			}
		})
	}
}

// rebuild rewrites link targets "OUTSIDE" to outside.
func rebuild(t *testing.T, layer []byte, outside string) []byte {
	tr := tar.NewReader(bytes.NewReader(layer))
	var es []entry
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		body := make([]byte, h.Size)
		tr.Read(body)
		es = append(es, entry{name: h.Name, link: strings.ReplaceAll(h.Linkname, "OUTSIDE", outside), body: string(body), typ: h.Typeflag})
	}
	return tarOf(t, es...)
}
