//go:build integration

package frontendtest

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/lade-build/lade/internal/testutil"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestBuildxRemoteDriver: buildx (hack/install-test-deps.sh installs
// v0.38.2) drives lade-buildkitd through its remote driver, as a buildx
// user would: `buildx create --driver remote` and `buildx inspect` see the
// worker and the BuildKit version; `buildx build` pushes the image with
// the provenance attestation buildx asks for by default (an index of the
// image and its attestation manifest) through lade's exporter, and writes
// a type=oci tarball; skopeo, umoci and runc check both.
func TestBuildxRemoteDriver(t *testing.T) {
	testutil.RequireTool(t, "buildx")
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	d := startDaemon(t, lade, "")
	ctx := contextDir(t, mainDockerfile, nil)
	tmp := t.TempDir()
	buildx := buildxRunner(t)

	buildx("create", "--name", "lade", "--driver", "remote", d.addr)
	checkBuildxInspect(t, buildx("inspect", "--bootstrap", "lade"))

	ref := reg.Host + "/lade/buildx:v1"
	md := filepath.Join(tmp, "md.json")
	out := buildx("--builder", "lade", "build", "--progress", "plain", "--metadata-file", md,
		"--output", "type=image,name="+ref+",push=true,registry.insecure=true", ctx)
	mustContain(t, "buildx build", out, "exporting to image", "exporting with lade", "dropping empty layer", "pushing manifest for "+ref)

	raw := skopeo(t, "inspect", "--tls-verify=false", "--raw", "docker://"+ref)
	var idx ocispec.Index
	if err := json.Unmarshal([]byte(raw), &idx); err != nil || idx.MediaType != ocispec.MediaTypeImageIndex || len(idx.Manifests) != 2 {
		t.Fatalf("pushed root: want an index of the image and its attestation manifest: %v\n%s", err, raw)
	}
	if idx.Manifests[0].Platform == nil || idx.Manifests[0].Platform.Architecture == "unknown" ||
		idx.Manifests[1].Annotations["vnd.docker.reference.type"] != "attestation-manifest" ||
		idx.Manifests[1].Annotations["vnd.docker.reference.digest"] != idx.Manifests[0].Digest.String() {
		t.Fatalf("index entries: want the image, then its attestation manifest:\n%s", raw)
	}
	var meta map[string]any
	b, err := os.ReadFile(md)
	if err != nil || json.Unmarshal(b, &meta) != nil {
		t.Fatalf("buildx metadata file: %v\n%s", err, b)
	}
	dgst := skopeo(t, "inspect", "--tls-verify=false", "--format", "{{.Digest}}", "docker://"+ref)
	if meta["containerimage.digest"] != strings.TrimSpace(dgst) {
		t.Fatalf("buildx metadata digest %v, registry %s", meta["containerimage.digest"], dgst)
	}
	dir := filepath.Join(tmp, "pulled")
	skopeo(t, "copy", "--src-tls-verify=false", "docker://"+ref, "oci:"+dir+":v1")
	checkMainImage(t, dir, "v1")

	ociTar := filepath.Join(tmp, "x.tar")
	out = buildx("--builder", "lade", "build", "--progress", "plain", "--provenance=false",
		"--output", "type=oci,dest="+ociTar+",name=lade/buildx:v2", ctx)
	mustContain(t, "buildx build", out, "exporting to oci image format", "exporting with lade")
	mustContain(t, "skopeo oci-archive", skopeo(t, "inspect", "oci-archive:"+ociTar), `"org.example.test": "lade"`)
	checkMainImage(t, extract(t, ociTar), "v2")
}

// buildkitVersionLine is buildx inspect's line naming the daemon's version.
var buildkitVersionLine = regexp.MustCompile(`(?m)^BuildKit version:\s+v0\.34\.2$`)

// checkBuildxInspect checks `buildx inspect --bootstrap` of a lade-buildkitd
// node: running, on the BuildKit it is built on, with the overlayfs worker.
func checkBuildxInspect(t *testing.T, out string) {
	t.Helper()
	mustContain(t, "buildx inspect", out, "running", "org.mobyproject.buildkit.worker.snapshotter:")
	if !buildkitVersionLine.MatchString(out) {
		t.Fatalf("buildx inspect: no \"BuildKit version: v0.34.2\" line in:\n%s", out)
	}
}

// buildxRunner returns a function running buildx with args and env added
// to this process's environment, with its builders kept in a test
// directory; it returns buildx's output and fails the test if buildx fails.
func buildxRunner(t *testing.T, env ...string) func(args ...string) string {
	env = append(append(os.Environ(), "DOCKER_CONFIG="+t.TempDir()), env...)
	return func(args ...string) string {
		t.Helper()
		cmd := exec.Command("buildx", args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("buildx %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
}
