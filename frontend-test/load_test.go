//go:build integration

package frontendtest

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ctd "github.com/containerd/containerd/v2/client"
	"github.com/lade-build/lade/exporter/containerd/containerdtest"
)

// loadNamespace is the containerd namespace Docker's containerd image
// store keeps its images in.
const loadNamespace = "moby"

// TestLoadIntoContainerdStore stands in for `buildx build --load` into a
// Docker engine that uses the containerd image store, which Debian's
// docker.io 20.10 has not: buildx then sends type=oci with the
// attributes of build/opt.go (prefer-image-digest=true, buildinfo-attrs,
// oci-artifact) and buildx's default provenance, streams the tarball to
// the engine, and the engine imports it into containerd and names the
// image by the digest the export reports. Here the tarball goes to
// Debian's containerd through `ctr images import`: the image must be named
// as asked, its target must be the export's containerimage.digest (an
// index holding the image and its attestation manifest), and it must run.
func TestLoadIntoContainerdStore(t *testing.T) {
	sock := containerdtest.Start(t)
	d := startDaemon(t, lade, "")
	bctx := contextDir(t, mainDockerfile, nil)
	dir := t.TempDir()
	tarPath, md := filepath.Join(dir, "load.tar"), filepath.Join(dir, "md.json")
	ref := "docker.io/lade/load:v1"
	out := d.mustBuild(t, bctx, "--opt", "attest:provenance=mode=min", "--metadata-file", md, "--output",
		"type=oci,dest="+tarPath+",name="+ref+",prefer-image-digest=true,buildinfo-attrs=true,oci-artifact=false")
	mustContain(t, "progress", out, "exporting to oci image format", "exporting with lade")
	if strings.Contains(out, "WARN") {
		t.Errorf("attributes buildx sends drew a warning:\n%s", out)
	}
	var meta map[string]any
	b, err := os.ReadFile(md)
	if err == nil {
		err = json.Unmarshal(b, &meta)
	}
	if err != nil {
		t.Fatalf("metadata file: %v", err)
	}
	want, _ := meta["containerimage.digest"].(string)
	if !strings.HasPrefix(want, "sha256:") {
		t.Fatalf("metadata has no containerimage.digest: %s", b)
	}

	ctr(t, sock, loadNamespace, "images", "import", tarPath) // unpacks the host's platform
	c, err := ctd.New(sock, ctd.WithDefaultNamespace(loadNamespace))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	img, err := c.ImageService().Get(context.Background(), ref)
	if err != nil {
		t.Fatalf("image %s after import: %v\n%s", ref, err, ctr(t, sock, loadNamespace, "images", "ls"))
	}
	if img.Target.Digest.String() != want {
		t.Fatalf("imported image %s is %s (%s); the export reported %s", ref, img.Target.Digest, img.Target.MediaType, want)
	}
	if got := ctr(t, sock, loadNamespace, "run", "--rm", ref, "lade-load-run", "cat", "/etc/app/hello.txt"); strings.TrimSpace(got) != "hello" {
		t.Errorf("ctr run printed %q, want hello", got)
	}
}
