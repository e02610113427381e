package reliability

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/lade-build/lade/exporter/unpack"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// hostileLayer is one hostile layer: its gzip blob and diffID.
type hostileLayer struct {
	name   string
	gz     []byte
	diffID digest.Digest
	// wantErr, when set, are substrings every reader that parses the tar
	// must fail with; nil means reading may succeed (the content is
	// harmless unless applied) but must not escape.
	wantErr []string
}

// tarEntry is one entry of a generated tar.
type tarEntry struct {
	name, link string
	typ        byte
	body       []byte
}

// writeTar writes entries as a PAX tar to w.
func writeTar(t testing.TB, w io.Writer, entries []tarEntry) {
	t.Helper()
	tw := tar.NewWriter(w)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: 0o644, Format: tar.FormatPAX}
		switch e.typ {
		case tar.TypeDir:
			h.Mode = 0o755
		case tar.TypeReg:
			h.Size = int64(len(e.body))
		}
		must(t, tw.WriteHeader(h))
		if len(e.body) > 0 {
			_, err := tw.Write(e.body)
			must(t, err)
		}
	}
	must(t, tw.Close())
}

// gzipLayer gzips the tar that write writes and returns it as a layer.
func gzipLayer(t testing.TB, name string, wantErr []string, write func(io.Writer)) hostileLayer {
	t.Helper()
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	must(t, err)
	h := digest.SHA256.Digester()
	write(io.MultiWriter(zw, h.Hash()))
	must(t, zw.Close())
	return hostileLayer{name: name, gz: gz.Bytes(), diffID: h.Digest(), wantErr: wantErr}
}

// hostileLayers builds the hostile layers aimed at the sentinel.
func hostileLayers(t testing.TB, sent sentinel) []hostileLayer {
	t.Helper()
	rel := strings.TrimPrefix(sent.dir, "/")
	up := strings.Repeat("../", 40) // from any root, up to /
	entries := func(es ...tarEntry) func(io.Writer) {
		return func(w io.Writer) { writeTar(t, w, es) }
	}
	ok := tarEntry{name: "ok", typ: tar.TypeReg, body: []byte("a harmless file\n")}
	layers := []hostileLayer{
		gzipLayer(t, "dotdot", []string{`".." path element not allowed`}, entries(ok,
			tarEntry{name: up + rel + "/dotdot", typ: tar.TypeReg, body: []byte("escaped by ..\n")})),
		gzipLayer(t, "absolute", []string{"absolute path not allowed"}, entries(ok,
			tarEntry{name: sent.dir + "/absolute", typ: tar.TypeReg, body: []byte("escaped by an absolute name\n")})),
		gzipLayer(t, "hardlink-up", []string{"hard link target", `".." path element not allowed`}, entries(ok,
			tarEntry{name: "hl-up", typ: tar.TypeLink, link: up + rel + "/target"})),
		gzipLayer(t, "hardlink-absolute", []string{"hard link target", "absolute path not allowed"}, entries(ok,
			tarEntry{name: "hl-abs", typ: tar.TypeLink, link: sent.file})),
		gzipLayer(t, "symlink-then-write", nil, entries(ok,
			tarEntry{name: "evil", typ: tar.TypeSymlink, link: sent.dir},
			tarEntry{name: "evil/pwned", typ: tar.TypeReg, body: []byte("written through an absolute symlink\n")},
			tarEntry{name: "evil-rel", typ: tar.TypeSymlink, link: up + rel},
			tarEntry{name: "evil-rel/pwned-rel", typ: tar.TypeReg, body: []byte("written through a relative symlink\n")},
			tarEntry{name: "evil-file", typ: tar.TypeSymlink, link: sent.file},
			tarEntry{name: "hl-via-symlink", typ: tar.TypeLink, link: "evil-file"},
			tarEntry{name: "evil-file", typ: tar.TypeReg, body: []byte("replaces the symlink, or writes through it?\n")})),
		gzipLayer(t, "huge-pax-header", []string{"header field too long"}, func(w io.Writer) {
			writeTar(t, &tarBody{w}, []tarEntry{ok})
			_, err := w.Write(paxHeader("PaxHeaders/big-header", "LADE.junk", strings.Repeat("j", 4<<20)))
			must(t, err)
			writeTar(t, w, []tarEntry{{name: "big-header", typ: tar.TypeReg, body: []byte("x")}})
		}),
		gzipLayer(t, "truncated", []string{"unexpected EOF"}, func(w io.Writer) {
			var buf bytes.Buffer
			writeTar(t, &buf, []tarEntry{ok, {name: "cut", typ: tar.TypeReg, body: bytes.Repeat([]byte("cut short "), 6000)}})
			_, err := w.Write(buf.Bytes()[:buf.Len()/2])
			must(t, err)
		}),
		bombLayer(t, ok),
	}
	return layers
}

// tarBody passes a tar stream on without its end-of-archive marker (two
// zero blocks), so another tar can be appended.
type tarBody struct{ w io.Writer }

func (b *tarBody) Write(p []byte) (int, error) {
	// archive/tar writes the two trailing zero blocks one Write each on
	// Close; the entries written through tarBody have no zero data block.
	if len(p) == 512 && bytes.Equal(p, make([]byte, 512)) {
		return len(p), nil
	}
	return b.w.Write(p)
}

// paxHeader returns a raw PAX extended header (typeflag 'x') holding the
// record key=value, padded to whole blocks: archive/tar refuses to write
// one over 1 MiB.
func paxHeader(name, key, value string) []byte {
	rec := key + "=" + value + "\n"
	n := len(rec) + 1
	for len(fmt.Sprint(n))+1+len(rec) != n {
		n = len(fmt.Sprint(n)) + 1 + len(rec)
	}
	rec = fmt.Sprintf("%d %s", n, rec)
	hdr := make([]byte, 512)
	copy(hdr[0:100], name)
	copy(hdr[100:108], "0000644\x00")
	copy(hdr[108:116], "0000000\x00")
	copy(hdr[116:124], "0000000\x00")
	copy(hdr[124:136], fmt.Sprintf("%011o\x00", len(rec)))
	copy(hdr[136:148], "00000000000\x00")
	hdr[156] = 'x'
	copy(hdr[257:263], "ustar\x00")
	copy(hdr[263:265], "00")
	copy(hdr[148:156], "        ")
	sum := 0
	for _, b := range hdr {
		sum += int(b)
	}
	copy(hdr[148:156], fmt.Sprintf("%06o\x00 ", sum))
	body := make([]byte, (len(rec)+511)/512*512)
	copy(body, rec)
	return append(hdr, body...)
}

// bombLayer is a gzip bomb: a tar of ok and 1 GiB of zeros, about 1 MiB
// compressed. It is a multi-member gzip stream (as pigz writes; every
// gzip reader reads the members as one stream): the member compressing
// 1 MiB of zeros is made once and repeated, so building it costs nothing
// but the diffID's hash.
func bombLayer(t testing.TB, ok tarEntry) hostileLayer {
	t.Helper()
	const size, chunk = 1 << 30, 1 << 20
	member := func(b []byte) []byte {
		var buf bytes.Buffer
		zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		must(t, err)
		_, err = zw.Write(b)
		must(t, err)
		must(t, zw.Close())
		return buf.Bytes()
	}
	var head bytes.Buffer
	tw := tar.NewWriter(&head)
	for _, h := range []*tar.Header{
		{Name: ok.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(ok.body)), Format: tar.FormatPAX},
		{Name: "zeros", Typeflag: tar.TypeReg, Mode: 0o644, Size: size, Format: tar.FormatPAX},
	} {
		must(t, tw.WriteHeader(h))
		if h.Name == ok.name {
			_, err := tw.Write(ok.body)
			must(t, err)
		}
	}
	tail := make([]byte, 1024) // the zeros end on a block boundary: only the end-of-archive marker
	zeros := make([]byte, chunk)
	h := digest.SHA256.Digester()
	h.Hash().Write(head.Bytes())
	gz := member(head.Bytes())
	zmember := member(zeros)
	for range size / chunk {
		h.Hash().Write(zeros)
		gz = append(gz, zmember...)
	}
	h.Hash().Write(tail)
	gz = append(gz, member(tail)...)
	t.Logf("gzip bomb: %d bytes for a %d-byte tar", len(gz), head.Len()+size+len(tail))
	return hostileLayer{name: "gzip-bomb", gz: gz, diffID: h.Digest()}
}

// writeHostileLayout writes an OCI layout at dir with one linux/amd64
// image, tagged "hostile", whose only layer is l.
func writeHostileLayout(t testing.TB, dir string, l hostileLayer) {
	t.Helper()
	put := func(mt string, b []byte) ocispec.Descriptor {
		d := ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(b), Size: int64(len(b))}
		p := filepath.Join(dir, "blobs", "sha256", d.Digest.Encoded())
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, b, 0o644))
		return d
	}
	layer := put(ocispec.MediaTypeImageLayerGzip, l.gz)
	cfg, err := json.Marshal(ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{l.diffID}},
		History:  []ocispec.History{{CreatedBy: "hostile " + l.name}},
	})
	must(t, err)
	m, err := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		Config: put(ocispec.MediaTypeImageConfig, cfg), Layers: []ocispec.Descriptor{layer}})
	must(t, err)
	md := put(ocispec.MediaTypeImageManifest, m)
	md.Annotations = map[string]string{ocispec.AnnotationRefName: "hostile"}
	idx, err := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{md}})
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, "index.json"), idx, 0o644))
	must(t, os.WriteFile(filepath.Join(dir, ocispec.ImageLayoutFile), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644))
}

// TestHostileLayers feeds hostile layers to every path of lade that reads
// or applies a tar, with a sentinel directory (one file) beside the test's
// roots that an escape would reach: entries named with ".." or an absolute
// path, hard links up and out or to an absolute path, writes through an
// absolute and a relative symlink (and a hard link to a symlink pointing
// out), a 4 MiB PAX header record, a stream cut in the middle of an entry,
// and a gzip bomb (1 GiB of zeros, about 1 MiB compressed). Each layer is
// the only layer of an OCI layout base image, and the same blob is a layer
// tarball:
//   - lade export --base oci:DIR onto the store (base blobs reused as they
//     are) succeeds, and exporter/unpack.Unpack of the result writes nothing
//     outside its root (no file beside the root, the sentinel unchanged, no
//     name in the root sharing the sentinel file's inode);
//   - lade export --base oci:DIR with compression=zstd,force-compression=true
//     (which re-reads the base layer), lade export with the layer tarball
//     as a LAYER argument, and the same with rewrite-timestamp=true (which
//     re-writes the tar) fail with one clear line naming the problem for
//     the malformed layers, leaving no destination file; the
//     symlink and bomb layers may be exported (nothing is applied), and a
//     bomb never makes lade hold it in memory (peak RSS under 512 MiB);
//   - the sentinel is unchanged after every step.
func TestHostileLayers(t *testing.T) {
	base := t.TempDir()
	sent := newSentinel(t, base)
	root := filepath.Join(base, "store")
	c := newCLI(t, root)
	small := filepath.Join(base, "small")
	writeFile(t, filepath.Join(small, "app"), "the new layer\n", 0o644)
	dest := filepath.Join(base, "dest")
	must(t, os.Mkdir(dest, 0o755))
	s := openStore(t, root)
	defer s.Close()

	for _, l := range hostileLayers(t, sent) {
		t.Run(l.name, func(t *testing.T) {
			c := &cli{t: t, root: c.root}
			dir := filepath.Join(base, l.name)
			layout := filepath.Join(dir, "layout")
			writeHostileLayout(t, layout, l)
			tarball := filepath.Join(dir, "layer.tar.gz")
			must(t, os.WriteFile(tarball, l.gz, 0o644))
			name := "hostile-" + l.name + ":1"
			clearDir(t, dest)

			// Base reused as it is, then applied by lade's unpack.
			c.ok("export", "--progress", "quiet", "--platform", "linux/amd64", "--base", "oci:"+layout+":hostile",
				"-o", "type=image,name="+name, small)
			sent.check(t)
			img, err := s.GetImage(context.Background(), name)
			must(t, err)
			sandbox := filepath.Join(dir, "sandbox")
			uroot := filepath.Join(sandbox, "root")
			amd64 := ocispec.Platform{OS: "linux", Architecture: "amd64"}
			err = unpack.Unpack(context.Background(), s.Content(), img.Target, uroot, unpack.Options{Platform: &amd64})
			t.Logf("unpack: %v; root holds %q", err, listTree(t, uroot))
			sent.check(t)
			onlyEntries(t, sandbox, "root")
			noLinkTo(t, uroot, sent.file)

			// Paths that parse the tar.
			for _, args := range [][]string{
				{"--base", "oci:" + layout + ":hostile", "-o", "type=oci,dest=" + filepath.Join(dest, "rebased.tar") + ",compression=zstd,force-compression=true", small},
				{"-o", "type=oci,dest=" + filepath.Join(dest, "tarball.tar"), tarball},
				{"-o", "type=oci,dest=" + filepath.Join(dest, "clamped.tar") + ",rewrite-timestamp=true,source-date-epoch=1700000000", tarball},
			} {
				args = append([]string{"export", "--progress", "quiet", "--platform", "linux/amd64"}, args...)
				if l.wantErr != nil {
					r := c.fail(l.wantErr, args...)
					if r.maxRSS > 512<<20 {
						t.Errorf("lade used %d MiB of memory", r.maxRSS>>20)
					}
					onlyEntries(t, dest)
				} else {
					r := c.run(args...)
					t.Logf("lade %s: exit %d, peak RSS %d MiB, %s", strings.Join(args[5:], " "), r.code, r.maxRSS>>20, strings.TrimSpace(r.stderr))
					if r.maxRSS > 512<<20 {
						t.Errorf("lade used %d MiB of memory", r.maxRSS>>20)
					}
					if r.code != 0 && (strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 || !strings.HasPrefix(r.stderr, "lade: ")) {
						t.Errorf("failed without one clear line\n%s", r)
					}
					clearDir(t, dest)
				}
				sent.check(t)
			}
		})
	}
	sent.check(t)
}

// noLinkTo fails the test when a file under root is the inode of target.
func noLinkTo(t testing.TB, root, target string) {
	t.Helper()
	tfi, err := os.Stat(target)
	must(t, err)
	tst := tfi.Sys().(*syscall.Stat_t)
	_ = filepathWalk(root, func(p string, fi os.FileInfo) {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Ino == tst.Ino && st.Dev == tst.Dev {
			t.Errorf("%s is a hard link to the sentinel %s", p, target)
		}
	})
}

// filepathWalk calls fn with the lstat of every path under root.
func filepathWalk(root string, fn func(string, os.FileInfo)) error {
	return filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		fn(p, fi)
		return nil
	})
}

// clearDir removes everything in dir.
func clearDir(t testing.TB, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	must(t, err)
	for _, e := range ents {
		must(t, os.RemoveAll(filepath.Join(dir, e.Name())))
	}
}
