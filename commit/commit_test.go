package commit_test

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/lade-build/lade/cache"
	"github.com/lade-build/lade/commit"
	"github.com/lade-build/lade/exporter"
	"github.com/lade-build/lade/exporter/exportertest"
	"github.com/lade-build/lade/exporter/unpack"
	"github.com/lade-build/lade/imagestore"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// created is the commit time of every test commit.
var created = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// TestCommit commits an edited copy of a base's rootfs: the image is the
// base's layers, reused, plus one layer holding exactly the edits; config
// and history are what docker commit makes.
func TestCommit(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	base := baseImage(t, s)
	rootfs := unpackTo(t, s, base)
	must(t, os.WriteFile(filepath.Join(rootfs, "etc/new"), []byte("new\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(rootfs, "etc/motd"), []byte("changed\n"), 0o644))
	must(t, os.Remove(filepath.Join(rootfs, "etc/gone")))

	res, err := commit.Commit(ctx, s.Content(), base, rootfs, commit.Options{
		Author: "Ada <ada@example.com>", Message: "edit etc", Created: created,
		Changes:     []string{"ENV MODE=prod", `CMD ["/bin/app"]`, "WORKDIR app", "LABEL a=b"},
		NoSameOwner: os.Geteuid() != 0,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Empty || len(res.Warnings) > 0 {
		t.Errorf("empty %v, warnings %v", res.Empty, res.Warnings)
	}
	img := verify(t, s, res.Descriptor)
	bimg := verify(t, s, base)
	if len(img.Manifest.Layers) != 2 || img.Manifest.Layers[0].Digest != bimg.Manifest.Layers[0].Digest {
		t.Fatalf("layers %v: want the base layer then one new layer", img.Manifest.Layers)
	}
	entries := layerEntries(t, s, img.Manifest.Layers[1])
	want := []string{"etc/", "etc/.wh.gone", "etc/motd", "etc/new"}
	if !slices.Equal(entries, want) {
		t.Errorf("new layer entries %v, want %v", entries, want)
	}
	cfg := img.Config
	h := cfg.History[len(cfg.History)-1]
	wantBy := `ENV MODE=prod; CMD ["/bin/app"]; WORKDIR app; LABEL a=b`
	if h.CreatedBy != wantBy || h.Author != "Ada <ada@example.com>" || h.Comment != "edit etc" || h.EmptyLayer || !h.Created.Equal(created) {
		t.Errorf("history entry %+v", h)
	}
	if jsonOf(cfg.History[:len(bimg.Config.History)]) != jsonOf(bimg.Config.History) {
		t.Errorf("base history changed: %+v", cfg.History)
	}
	if cfg.Author != "Ada <ada@example.com>" || !cfg.Created.Equal(created) || cfg.Architecture != "amd64" || cfg.OS != "linux" {
		t.Errorf("config author %q created %v platform %s/%s", cfg.Author, cfg.Created, cfg.OS, cfg.Architecture)
	}
	c := cfg.Config
	if !slices.Equal(c.Cmd, []string{"/bin/app"}) || c.WorkingDir != "/srv/app" || c.Labels["a"] != "b" ||
		!slices.Contains(c.Env, "MODE=prod") || !slices.Contains(c.Env, "PATH=/bin") || c.User != "nobody" {
		t.Errorf("config %+v", c)
	}
}

// TestCommitUnchanged commits the base's own rootfs: no layer, an
// empty_layer history entry, the base's diff_ids.
func TestCommitUnchanged(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	base := baseImage(t, s)
	rootfs := unpackTo(t, s, base)
	res, err := commit.Commit(ctx, s.Content(), base, rootfs, commit.Options{Created: created, NoSameOwner: os.Geteuid() != 0})
	if err != nil {
		t.Fatal(err)
	}
	img, bimg := verify(t, s, res.Descriptor), verify(t, s, base)
	if !res.Empty || !slices.Equal(img.Config.RootFS.DiffIDs, bimg.Config.RootFS.DiffIDs) || len(img.Manifest.Layers) != 1 {
		t.Fatalf("empty %v, diff_ids %v, want the base's %v", res.Empty, img.Config.RootFS.DiffIDs, bimg.Config.RootFS.DiffIDs)
	}
	h := img.Config.History[len(img.Config.History)-1]
	if !h.EmptyLayer || h.CreatedBy != commit.DefaultCreatedBy || h.Author != "base author" {
		t.Errorf("history entry %+v: want empty_layer, created_by %q and the base's author", h, commit.DefaultCreatedBy)
	}
}

// TestCommitDefaults commits on a base whose config names no platform and
// lists no history: host os/arch are assumed with warnings, and the base
// layer gets a synthesized entry so the new entry goes with the new layer.
func TestCommitDefaults(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	full := verify(t, s, baseImage(t, s))
	cfg := []byte(`{"rootfs":{"type":"layers","diff_ids":["` + full.Config.RootFS.DiffIDs[0].String() + `"]},"config":{}}`)
	cdesc := writeJSON(t, s, ocispec.MediaTypeImageConfig, cfg)
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: cdesc, Layers: full.Manifest.Layers}
	m.SchemaVersion = 2
	mb, _ := json.Marshal(m)
	base := writeJSON(t, s, ocispec.MediaTypeImageManifest, mb)
	rootfs := unpackTo(t, s, base)
	must(t, os.WriteFile(filepath.Join(rootfs, "added"), []byte("x"), 0o644))
	res, err := commit.Commit(ctx, s.Content(), base, rootfs, commit.Options{Created: created, NoSameOwner: os.Geteuid() != 0})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Warnings) != 2 || !strings.Contains(res.Warnings[0], "assuming") {
		t.Errorf("warnings %q, want two 'assuming' warnings", res.Warnings)
	}
	img := verify(t, s, res.Descriptor)
	if len(img.Config.History) != 2 || img.Config.History[0].Comment != exporter.SynthesizedComment || img.Config.History[1].CreatedBy != commit.DefaultCreatedBy {
		t.Errorf("history %+v", img.Config.History)
	}
}

// TestCommitScratch commits a directory without a base: one layer with
// the whole directory.
func TestCommitScratch(t *testing.T) {
	s := openStore(t)
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "hello"), []byte("hi"), 0o644))
	res, err := commit.Commit(context.Background(), s.Content(), ocispec.Descriptor{}, dir, commit.Options{Created: created, Changes: []string{`ENTRYPOINT ["/hello"]`}})
	if err != nil {
		t.Fatal(err)
	}
	img := verify(t, s, res.Descriptor)
	if got := layerEntries(t, s, img.Manifest.Layers[0]); !slices.Equal(got, []string{"hello"}) {
		t.Errorf("layer entries %v", got)
	}
	if !slices.Equal(img.Config.Config.Entrypoint, []string{"/hello"}) || len(res.Warnings) != 2 {
		t.Errorf("entrypoint %v, warnings %v", img.Config.Config.Entrypoint, res.Warnings)
	}
}

// TestCommitBadInputs checks that bad changes and rootfs fail before work.
func TestCommitBadInputs(t *testing.T) {
	s := openStore(t)
	for _, tc := range []struct {
		rootfs  string
		changes []string
		want    string
	}{
		{t.TempDir(), []string{"RUN make"}, "RUN is not an instruction commit takes"},
		{t.TempDir(), []string{"EXPOSE 99999"}, "ports 1-65535"},
		{filepath.Join(t.TempDir(), "missing"), nil, "not a directory"},
	} {
		_, err := commit.Commit(context.Background(), s.Content(), ocispec.Descriptor{}, tc.rootfs, commit.Options{Changes: tc.changes})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("changes %v rootfs %s: %v, want %q", tc.changes, tc.rootfs, err, tc.want)
		}
	}
}

func openStore(t *testing.T) *imagestore.Store {
	t.Helper()
	s, err := imagestore.Open(context.Background(), t.TempDir())
	must(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// baseImage exports a one-layer linux/amd64 base with a config and history.
func baseImage(t *testing.T, s *imagestore.Store) ocispec.Descriptor {
	t.Helper()
	dir := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(dir, "etc"), 0o755))
	must(t, os.MkdirAll(filepath.Join(dir, "srv"), 0o755))
	for name, data := range map[string]string{"etc/motd": "hello\n", "etc/gone": "bye\n", "srv/data": "d"} {
		must(t, os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644))
	}
	ref, err := cache.NewDirRef(dir, nil, cache.DirOptions{Description: "COPY rootfs /"})
	must(t, err)
	cfg := `{"author":"base author","config":{"Env":["PATH=/bin"],"User":"nobody","WorkingDir":"/srv","Cmd":["sh"]},
		"history":[{"created":"2025-01-01T00:00:00Z","created_by":"COPY rootfs /"}]}`
	res, err := exporter.NewImageWriter(s.Content()).Commit(context.Background(), exporter.Source{
		Platforms: []exporter.PlatformSource{{Platform: "linux/amd64", Ref: ref, Config: []byte(cfg), BaseHistory: 1}},
	}, exporter.Options{})
	must(t, err)
	return res.Descriptor
}

// unpackTo unpacks an image into a fresh directory, as a user would to edit it.
func unpackTo(t *testing.T, s *imagestore.Store, root ocispec.Descriptor) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "rootfs")
	must(t, unpack.Unpack(context.Background(), s.Content(), root, dir, unpack.Options{NoSameOwner: os.Geteuid() != 0}))
	return dir
}

func verify(t *testing.T, s *imagestore.Store, root ocispec.Descriptor) exportertest.Image {
	t.Helper()
	imgs, err := exportertest.Verify(context.Background(), s.Content(), root)
	must(t, err)
	return imgs[0]
}

// layerEntries lists the names in a layer, sorted.
func layerEntries(t *testing.T, s *imagestore.Store, d ocispec.Descriptor) []string {
	t.Helper()
	rc, err := exportertest.Open(context.Background(), s.Content(), d)
	must(t, err)
	defer rc.Close()
	r, err := exportertest.Decompress(d.MediaType, rc)
	must(t, err)
	tr := tar.NewReader(r)
	var names []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		must(t, err)
		names = append(names, h.Name)
	}
	slices.Sort(names)
	return names
}

func writeJSON(t *testing.T, s *imagestore.Store, mt string, b []byte) ocispec.Descriptor {
	t.Helper()
	d := ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(b), Size: int64(len(b))}
	must(t, content.WriteBlob(context.Background(), s.Content(), d.Digest.String(), strings.NewReader(string(b)), d))
	return d
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
