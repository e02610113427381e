package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/platforms"
	"github.com/lade-build/lade/imagestore"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// fullConfigInner is a "config" object holding every field of the Docker
// and OCI image config specs, an unknown field, values with spaces, "=" and
// quotes, in the order Docker writes them (not sorted). It is compact and
// holds no <, > or &, which JSON encoders may escape: lade must give it
// back byte for byte.
const fullConfigInner = `{"Hostname":"h","Domainname":"d.example","User":"1000:1000",` +
	`"AttachStdin":false,"AttachStdout":false,"AttachStderr":false,"ExposedPorts":{"53/udp":{},"80/tcp":{}},` +
	`"Tty":false,"OpenStdin":false,"StdinOnce":false,` +
	`"Env":["PATH=/usr/bin:/bin","QUOTED=say \"hi\" a=b","LAST=1"],"Cmd":["/bin/sh","-c","echo $QUOTED"],` +
	`"Healthcheck":{"Test":["CMD-SHELL","test -e /tmp/ok"],"Interval":30000000000,"Timeout":5000000000,"StartPeriod":1000000000,"StartInterval":2000000000,"Retries":3},` +
	`"ArgsEscaped":true,"Image":"sha256:4a2c5e5e5e2f0f3c1f6bd22c8e4f2a7c0e1c7d2e9b8a6f5d4c3b2a1908070605",` +
	`"Volumes":{"/data":{},"/var/log":{}},"WorkingDir":"/srv","Entrypoint":["/entry","--flag=x y"],` +
	`"NetworkDisabled":true,"MacAddress":"02:42:ac:11:00:02","OnBuild":["RUN make","ENV A=1"],` +
	`"Labels":{"org.example.q":"a \"quoted\" v=1","z":""},"StopSignal":"SIGQUIT","StopTimeout":17,` +
	`"Shell":["/bin/bash","-o","pipefail","-c"],"X-Lade-Unknown":{"nested":[1,"two",null],"b":true}}`

// fullConfigTop are the top-level fields of the base config that neither
// export nor commit edits, as written in the base (unknown ones included).
var fullConfigTop = map[string]string{
	"author":         `"Base Author"`,
	"comment":        `"a base comment"`,
	"docker_version": `"20.10.24"`,
	"os.version":     `"10.0.17763.1"`,
	"os.features":    `["win32k"]`,
	"x-lade-top":     `{"keep":["me",1]}`,
	"architecture":   `"amd64"`,
	"os":             `"linux"`,
}

// TestConfigRoundTrip exports and commits on a base whose config holds
// every config field: with no edits the "config" object and the top-level
// fields nothing edits come out byte for byte; --env and --label values
// with spaces, "=" and quotes come out as given, ENV replacing a key in
// place, --cmd in the base's Shell and kept beside --entrypoint, and the
// fields not edited are still the base's.
func TestConfigRoundTrip(t *testing.T) {
	c := newRunner(t)
	rootfs := t.TempDir()
	writeFile(t, filepath.Join(rootfs, "etc/base"), "base\n", 0o644)
	layout := writeFullConfigLayout(t, rootfs)
	base := "oci:" + layout + ":1"

	c.ok("export", "--progress", "quiet", "--platform", "linux/amd64", "--base", base, "-o", "type=image,name=exp:1")
	checkConfigKept(t, "export", storedConfig(t, c, "exp:1"), nil)
	c.ok("commit", "--progress", "quiet", "--platform", "linux/amd64", "--base", base, "--rootfs", rootfs, "com:1")
	checkConfigKept(t, "commit", storedConfig(t, c, "com:1"), []string{"container", "container_config"})

	env, label := `QUOTED=new "value" with=equals 'and' spaces`, `org.example.q=it's "x" = y`
	c.ok("export", "--progress", "quiet", "--platform", "linux/amd64", "--base", base,
		"--env", env, "--env", "ADDED= x=$HOME ", "--label", label,
		"--entrypoint", `["/new"]`, "--cmd", "run it", "-o", "type=image,name=edit:1")
	var got, want map[string]any
	mustJSON(t, string(storedConfig(t, c, "edit:1")["config"]), &got)
	mustJSON(t, fullConfigInner, &want)
	want["Env"] = []any{"PATH=/usr/bin:/bin", env, "LAST=1", "ADDED= x=$HOME "}
	want["Labels"].(map[string]any)["org.example.q"] = `it's "x" = y`
	want["Entrypoint"], want["Cmd"] = []any{"/new"}, []any{"/bin/bash", "-o", "pipefail", "-c", "run it"}
	if g, w := jsonString(got), jsonString(want); g != w {
		t.Errorf("edited config:\n got %s\nwant %s", g, w)
	}
	c.checkClean()
}

// checkConfigKept compares cfg with the base config: "config" byte for
// byte, and every top-level field in fullConfigTop, but for those dropped.
func checkConfigKept(t *testing.T, what string, cfg map[string]json.RawMessage, dropped []string) {
	t.Helper()
	if got := string(cfg["config"]); got != fullConfigInner {
		t.Errorf("%s: \"config\" changed:\n got %s\nwant %s", what, got, fullConfigInner)
	}
	for k, want := range fullConfigTop {
		if got := string(cfg[k]); got != want {
			t.Errorf("%s: top-level %q is %s, want %s", what, k, got, want)
		}
	}
	for _, k := range dropped {
		if _, ok := cfg[k]; ok {
			t.Errorf("%s: %q kept, want it dropped", what, k)
		}
	}
}

// writeFullConfigLayout writes an OCI layout holding, as tag 1, an image of
// one uncompressed layer (the files of dir) whose config is the full one.
func writeFullConfigLayout(t *testing.T, dir string) string {
	t.Helper()
	layout := t.TempDir()
	layer := tarDir(t, dir)
	diffID := digest.FromBytes(layer)
	top := map[string]json.RawMessage{"config": json.RawMessage(fullConfigInner),
		"created":          json.RawMessage(`"2020-01-02T03:04:05Z"`),
		"container":        json.RawMessage(`"3c1f6bd22c8e"`),
		"container_config": json.RawMessage(`{"Cmd":["/bin/sh","-c","#(nop) COPY . /"]}`),
		"rootfs":           json.RawMessage(fmt.Sprintf(`{"type":"layers","diff_ids":[%q]}`, diffID)),
		"history":          json.RawMessage(`[{"created":"2020-01-02T03:04:05Z","created_by":"COPY . /"}]`),
	}
	for k, v := range fullConfigTop {
		top[k] = json.RawMessage(v)
	}
	cfg, err := json.Marshal(top)
	must(t, err)
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest,
		Config: putLayoutBlob(t, layout, ocispec.MediaTypeImageConfig, cfg),
		Layers: []ocispec.Descriptor{putLayoutBlob(t, layout, ocispec.MediaTypeImageLayer, layer)}}
	m.SchemaVersion = 2
	mb, err := json.Marshal(m)
	must(t, err)
	md := putLayoutBlob(t, layout, ocispec.MediaTypeImageManifest, mb)
	md.Annotations = map[string]string{ocispec.AnnotationRefName: "1"}
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{md}}
	idx.SchemaVersion = 2
	ib, err := json.Marshal(idx)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(layout, "index.json"), ib, 0o644))
	must(t, os.WriteFile(filepath.Join(layout, ocispec.ImageLayoutFile), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644))
	return layout
}

// putLayoutBlob writes data into the layout's blobs.
func putLayoutBlob(t *testing.T, layout, mediaType string, data []byte) ocispec.Descriptor {
	t.Helper()
	d := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}
	writeFile(t, filepath.Join(layout, "blobs", "sha256", d.Digest.Encoded()), string(data), 0o644)
	return d
}

// tarDir is an uncompressed layer of the regular files and directories of
// dir, in a stable order.
func tarDir(t *testing.T, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	var paths []string
	must(t, filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		paths = append(paths, p)
		return err
	}))
	slices.Sort(paths)
	for _, p := range paths[1:] {
		fi, err := os.Lstat(p)
		must(t, err)
		h, err := tar.FileInfoHeader(fi, "")
		must(t, err)
		rel, _ := filepath.Rel(dir, p)
		h.Name = filepath.ToSlash(rel)
		must(t, tw.WriteHeader(h))
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			must(t, err)
			_, err = tw.Write(b)
			must(t, err)
		}
	}
	must(t, tw.Close())
	return buf.Bytes()
}

// storedConfig returns the top-level fields of the linux/amd64 config of a
// stored image, as stored.
func storedConfig(t *testing.T, c *runner, name string) map[string]json.RawMessage {
	t.Helper()
	var top map[string]json.RawMessage
	withStoredImage(t, c, name, func(ctx context.Context, s *imagestore.Store, target ocispec.Descriptor) {
		m, err := images.Manifest(ctx, s.Content(), target, platforms.Only(ocispec.Platform{OS: "linux", Architecture: "amd64"}))
		must(t, err)
		b, err := content.ReadBlob(ctx, s.Content(), m.Config)
		must(t, err)
		mustJSON(t, string(b), &top)
	})
	return top
}

// withStoredImage opens c's store, calls fn with the root descriptor of
// the image name, and closes the store (lade runs cannot open it while
// the test holds it).
func withStoredImage(t *testing.T, c *runner, name string, fn func(context.Context, *imagestore.Store, ocispec.Descriptor)) {
	t.Helper()
	ctx := context.Background()
	s, err := imagestore.Open(ctx, c.root)
	must(t, err)
	defer s.Close()
	img, err := s.GetImage(ctx, name)
	must(t, err)
	fn(ctx, s, img.Target)
}
