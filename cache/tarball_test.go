package cache_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/lade-build/lade/cache"
	"github.com/lade-build/lade/cache/cachetest"
	digest "github.com/opencontainers/go-digest"
)

// buildTar writes hdrs (with content for regular files) as a tar, padded to
// a 10240-byte record like GNU tar's output.
func buildTar(t testing.TB, hdrs []*tar.Header, contents map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hdrs {
		data := contents[h.Name]
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(data))
		}
		must(t, tw.WriteHeader(h))
		if _, err := tw.Write([]byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	must(t, tw.Close())
	if pad := buf.Len() % 10240; pad != 0 {
		buf.Write(make([]byte, 10240-pad))
	}
	return buf.Bytes()
}

func TestTarballHostile(t *testing.T) {
	epoch := time.Unix(1_000_000, 0)
	for _, tc := range []struct {
		name string
		hdr  tar.Header
		want string
	}{
		{"parent", tar.Header{Name: "../evil", Typeflag: tar.TypeReg}, `".." path element`},
		{"inner parent", tar.Header{Name: "a/../../evil", Typeflag: tar.TypeReg}, `".." path element`},
		{"trailing parent", tar.Header{Name: "a/..", Typeflag: tar.TypeDir}, `".." path element`},
		{"absolute", tar.Header{Name: "/etc/passwd", Typeflag: tar.TypeReg}, "absolute path"},
		{"hard link up", tar.Header{Name: "ok", Typeflag: tar.TypeLink, Linkname: "../../etc/shadow"}, "hard link target"},
		{"hard link absolute", tar.Header{Name: "ok", Typeflag: tar.TypeLink, Linkname: "/etc/shadow"}, "absolute path"},
	} {
		for _, ep := range []*time.Time{nil, &epoch} {
			t.Run(fmt.Sprintf("%s/epoch=%v", tc.name, ep != nil), func(t *testing.T) {
				fine := &tar.Header{Name: "fine", Typeflag: tar.TypeReg, Mode: 0o644}
				hdr := tc.hdr
				p := writeTemp(t, "hostile.tar", buildTar(t, []*tar.Header{fine, &hdr}, map[string]string{"fine": "x"}))
				r, err := cache.NewTarballRef(p, nil, cache.TarballOptions{})
				must(t, err)
				_, err = readDiff(t, r, cache.DiffOptions{Epoch: ep})
				if err == nil || !strings.Contains(err.Error(), tc.want) ||
					!strings.Contains(err.Error(), "layer tarball "+p) || !strings.Contains(err.Error(), fmt.Sprintf("%q", tc.hdr.Name)) {
					t.Fatalf("error %v, want one naming the tarball, the entry and %q", err, tc.want)
				}
			})
		}
	}
}

func TestTarballSymlinksAllowed(t *testing.T) {
	hdrs := []*tar.Header{
		{Name: "abs", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"},
		{Name: "up", Typeflag: tar.TypeSymlink, Linkname: "../../x"},
		{Name: "./dot", Typeflag: tar.TypeReg},
	}
	r, err := cache.NewTarballRef(writeTemp(t, "l.tar", buildTar(t, hdrs, nil)), nil, cache.TarballOptions{})
	must(t, err)
	if _, err := readDiff(t, r, cache.DiffOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestTarballDiffIDMismatch(t *testing.T) {
	tarBytes := buildTar(t, []*tar.Header{{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644}}, map[string]string{"f": "data"})
	actual := digest.FromBytes(tarBytes)
	wrong := digest.FromString("something else")
	epoch := time.Unix(1, 0)
	for _, c := range []compressor{plain, gzipped, zstded} {
		for _, ep := range []*time.Time{nil, &epoch} {
			p := writeTemp(t, "layer", compress(t, tarBytes, c))
			r, err := cache.NewTarballRef(p, nil, cache.TarballOptions{DiffID: wrong})
			must(t, err)
			_, err = readDiff(t, r, cache.DiffOptions{Epoch: ep})
			want := fmt.Sprintf("layer tarball %s: diffID %s expected %s", p, actual, wrong)
			if err == nil || err.Error() != want {
				t.Errorf("%s: error %v, want %q", c, err, want)
			}
			if !errors.Is(err, cache.ErrDigestMismatch) || !errors.Is(err, errdefs.ErrDataLoss) {
				t.Errorf("%s: error %v does not match ErrDigestMismatch and ErrDataLoss", c, err)
			}
			r, err = cache.NewTarballRef(p, nil, cache.TarballOptions{DiffID: actual})
			must(t, err)
			if _, err := readDiff(t, r, cache.DiffOptions{Epoch: ep}); err != nil {
				t.Errorf("%s: right diffID: %v", c, err)
			}
		}
	}
}

// TestTarballBytes checks that without an epoch the tar is passed on as it
// is (padding included), and that with one only timestamps change.
func TestTarballBytes(t *testing.T) {
	old := time.Date(2020, 1, 1, 0, 0, 0, 123456789, time.UTC)
	recent := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	epoch := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	hdrs := []*tar.Header{
		{Name: "dir/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: recent, Format: tar.FormatPAX},
		{Name: "dir/new", Typeflag: tar.TypeReg, Mode: 0o644, ModTime: recent, AccessTime: recent, ChangeTime: recent,
			Format: tar.FormatPAX, PAXRecords: map[string]string{"SCHILY.xattr.user.k": "v"}},
		{Name: "dir/old", Typeflag: tar.TypeReg, Mode: 0o600, ModTime: old, Format: tar.FormatPAX, Uid: 7, Gid: 8},
		{Name: "dir/" + strings.Repeat("n", 150), Typeflag: tar.TypeSymlink, Linkname: "old", ModTime: recent, Format: tar.FormatGNU},
	}
	tarBytes := buildTar(t, hdrs, map[string]string{"dir/new": "new data", "dir/old": "old data"})
	p := writeTemp(t, "layer.tar", compress(t, tarBytes, zstded))
	r, err := cache.NewTarballRef(p, nil, cache.TarballOptions{DiffID: digest.FromBytes(tarBytes)})
	must(t, err)
	if got := cachetest.ReadDiff(t, r, cache.DiffOptions{}); !bytes.Equal(got, tarBytes) {
		t.Fatalf("diff without epoch: %d bytes differ from the tarball's %d", len(got), len(tarBytes))
	}
	want, err := cachetest.ReadEntries(bytes.NewReader(tarBytes))
	must(t, err)
	for i := range want {
		for _, tm := range []*time.Time{&want[i].ModTime, &want[i].AccessTime, &want[i].ChangeTime} {
			if tm.After(epoch) {
				*tm = epoch
			}
		}
	}
	cachetest.CompareEntries(t, "clamped", cachetest.Entries(t, r, cache.DiffOptions{Epoch: &epoch}), want)
}

func TestTarballCompressionByMagic(t *testing.T) {
	xz := append([]byte{0xfd, '7', 'z', 'X', 'Z', 0}, make([]byte, 100)...)
	r, err := cache.NewTarballRef(writeTemp(t, "layer.tar.gz", xz), nil, cache.TarballOptions{})
	must(t, err)
	if _, err := readDiff(t, r, cache.DiffOptions{}); err == nil || !strings.Contains(err.Error(), "xz compression is not supported") {
		t.Errorf("xz: %v", err)
	}
	tarBytes := buildTar(t, []*tar.Header{{Name: "f", Typeflag: tar.TypeReg}}, nil)
	gz := compress(t, tarBytes, gzipped)
	r, err = cache.NewTarballRef(writeTemp(t, "layer.tar.zst", gz[:len(gz)-10]), nil, cache.TarballOptions{})
	must(t, err)
	if _, err := readDiff(t, r, cache.DiffOptions{}); err == nil {
		t.Error("truncated gzip: no error")
	}
	r, err = cache.NewTarballRef(writeTemp(t, "garbage", []byte("not a tar at all")), nil, cache.TarballOptions{})
	must(t, err)
	if _, err := readDiff(t, r, cache.DiffOptions{}); err == nil {
		t.Error("garbage: no error")
	}
}

func TestTarballRef(t *testing.T) {
	tarBytes := buildTar(t, []*tar.Header{{Name: "f", Typeflag: tar.TypeReg}}, nil)
	p := writeTemp(t, "layer.tar", tarBytes)
	r, err := cache.NewTarballRef(p, nil, cache.TarballOptions{})
	must(t, err)
	id := r.ID()
	if !strings.HasPrefix(id, "tarball:sha256:") || r.ID() != id || r.Path() != p {
		t.Fatalf("ID %q, path %q", id, r.Path())
	}
	if r.Description() != "lade: layer tarball layer.tar" || !r.CreatedAt().IsZero() || r.Layer().Size() != int64(len(tarBytes)) {
		t.Errorf("metadata %q %s %d", r.Description(), r.CreatedAt(), r.Layer().Size())
	}
	if _, ok := r.Stored(); ok {
		t.Error("Stored() ok for a tarball")
	}
	withDiffID, err := cache.NewTarballRef(p, nil, cache.TarballOptions{DiffID: digest.FromBytes(tarBytes)})
	must(t, err)
	withParent, err := cache.NewTarballRef(p, r, cache.TarballOptions{})
	must(t, err)
	must(t, os.WriteFile(p, append(tarBytes, make([]byte, 512)...), 0o644))
	rewritten, err := cache.NewTarballRef(p, nil, cache.TarballOptions{})
	must(t, err)
	for name, other := range map[string]*cache.TarballRef{"diffID": withDiffID, "parent": withParent, "rewritten": rewritten} {
		if other.ID() == id {
			t.Errorf("%s: same ID", name)
		}
	}
}

func TestTarballErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.tar")
	if _, err := cache.NewTarballRef(missing, nil, cache.TarballOptions{}); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing: %v", err)
	}
	if _, err := cache.NewTarballRef(dir, nil, cache.TarballOptions{}); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
	p := writeTemp(t, "l.tar", buildTar(t, nil, nil))
	if _, err := cache.NewTarballRef(p, nil, cache.TarballOptions{DiffID: "sha256:nothex"}); err == nil {
		t.Error("invalid diffID accepted")
	}
}
