//go:build integration

package frontendtest

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/lade-build/lade/exporter/archive"
	"github.com/lade-build/lade/exporter/exportertest"
	"github.com/lade-build/lade/internal/testutil"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// layout is an OCI layout read back from a test output.
type layout struct {
	archive.Layout
	root ocispec.Descriptor
}

// openLayoutTar opens an OCI layout tar (type=oci or type=docker output)
// and returns it with its first index.json entry as root.
func openLayoutTar(t *testing.T, path string) *layout {
	t.Helper()
	tf, err := archive.OpenTar(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tf.Close() })
	return rootOf(t, tf)
}

// openLayoutDir opens an OCI layout directory.
func openLayoutDir(t *testing.T, dir string) *layout {
	t.Helper()
	d, err := archive.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return rootOf(t, d)
}

func rootOf(t *testing.T, l archive.Layout) *layout {
	t.Helper()
	idx, err := archive.ReadIndex(l)
	if err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) == 0 {
		t.Fatal("index.json has no entry")
	}
	root := idx.Manifests[0]
	root.Annotations = nil
	return &layout{Layout: l, root: root}
}

// verify runs lade's output oracle (blob digests and sizes, diffIDs,
// history against layers, platforms) and returns the images.
func (l *layout) verify(t *testing.T) []exportertest.Image {
	t.Helper()
	imgs, err := exportertest.Verify(context.Background(), l, l.root)
	if err != nil {
		t.Fatalf("oracle: %v", err)
	}
	return imgs
}

// blob reads a blob of the layout.
func (l *layout) blob(t *testing.T, d ocispec.Descriptor) []byte {
	t.Helper()
	b, err := content.ReadBlob(context.Background(), l, d)
	if err != nil {
		t.Fatalf("read %s: %v", d.Digest, err)
	}
	return b
}

// json decodes a blob of the layout into v.
func (l *layout) json(t *testing.T, d ocispec.Descriptor, v any) {
	t.Helper()
	if err := json.Unmarshal(l.blob(t, d), v); err != nil {
		t.Fatalf("decode %s: %v", d.Digest, err)
	}
}

// rawConfig returns the config JSON of a single-manifest root as a map, so
// that fields the image spec does not know (the inline cache) stay.
func (l *layout) rawConfig(t *testing.T) map[string]json.RawMessage {
	t.Helper()
	var m ocispec.Manifest
	l.json(t, l.root, &m)
	var cfg map[string]json.RawMessage
	l.json(t, m.Config, &cfg)
	return cfg
}

// diffIDs returns the config's rootfs.diff_ids of a single-manifest root.
func diffIDsOf(t *testing.T, l *layout) []digest.Digest {
	imgs := l.verify(t)
	if len(imgs) != 1 {
		t.Fatalf("%d images, want 1", len(imgs))
	}
	return imgs[0].Config.RootFS.DiffIDs
}

// extract unpacks a tar into a new directory.
func extract(t *testing.T, tarPath string) string {
	t.Helper()
	dir := t.TempDir()
	testutil.Run(t, "tar", "-xf", tarPath, "-C", dir)
	return dir
}

// runImage unpacks the image tagged tag of the OCI layout dir with umoci
// and runs it with runc, with args (nil: the image's command); it returns
// the output.
func runImage(t *testing.T, dir, tag string, args ...string) string {
	t.Helper()
	testutil.RequireTool(t, "umoci", "runc")
	bundle := filepath.Join(t.TempDir(), "bundle")
	testutil.Run(t, "umoci", "unpack", "--image", dir+":"+tag, bundle)
	cfgPath := filepath.Join(bundle, "config.json")
	var spec map[string]any
	b, err := os.ReadFile(cfgPath)
	if err != nil || json.Unmarshal(b, &spec) != nil {
		t.Fatalf("runtime config: %v", err)
	}
	proc := spec["process"].(map[string]any)
	proc["terminal"] = false
	if args != nil {
		proc["args"] = args
	}
	if b, err = json.Marshal(spec); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	id := "lade-ft-" + filepath.Base(filepath.Dir(bundle))
	cmd := exec.Command("runc", "--root", state, "run", "--bundle", bundle, id)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("runc run: %v\n%s", err, out)
	}
	return string(out)
}

// skopeo runs skopeo and returns its output.
func skopeo(t *testing.T, args ...string) string {
	t.Helper()
	return testutil.Run(t, "skopeo", args...)
}

// mustContain fails unless s contains every want.
func mustContain(t *testing.T, what, s string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(s, w) {
			t.Fatalf("%s: %q not found in:\n%s", what, w, s)
		}
	}
}
