//go:build integration

package frontendtest

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lade-build/lade/internal/testutil"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// multiNodeDockerfile builds a runnable image per platform by COPY only,
// so neither node needs emulation: busybox (the host's, amd64) and a file
// naming the target architecture, printed by the image's command.
const multiNodeDockerfile = `FROM scratch
COPY busybox /bin/busybox
ARG TARGETARCH
COPY arch-${TARGETARCH}.txt /arch.txt
CMD ["/bin/busybox", "cat", "/arch.txt"]
`

// TestBuildxMultiNode: two lade-buildkitd daemons, one platform each
// (--oci-worker-platform linux/amd64 and linux/arm64), form one buildx
// builder (`buildx create --driver remote`, then `--append`); `buildx build
// --platform linux/amd64,linux/arm64 --push` sends each platform to its
// node, each node's lade exporter pushes its image, and buildx joins them
// into one index in the registry: the index has both platforms, each
// manifest's config names its platform, and the amd64 image runs (umoci
// unpack and runc) and prints its architecture.
func TestBuildxMultiNode(t *testing.T) {
	testutil.RequireTool(t, "buildx")
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	toml := fmt.Sprintf("[registry.%q]\n  http = true\n  insecure = true\n", reg.Host)
	amd := startDaemon(t, lade, toml, "--oci-worker-platform", "linux/amd64")
	arm := startDaemon(t, lade, toml, "--oci-worker-platform", "linux/arm64")
	ctx := contextDir(t, multiNodeDockerfile, map[string]string{"arch-amd64.txt": "amd64\n", "arch-arm64.txt": "arm64\n"})
	buildx := buildxRunner(t)

	buildx("create", "--name", "multi", "--driver", "remote", "--platform", "linux/amd64", amd.addr)
	buildx("create", "--name", "multi", "--append", "--driver", "remote", "--platform", "linux/arm64", arm.addr)
	inspect := buildx("inspect", "--bootstrap", "multi")
	if n := strings.Count(inspect, "\nName:"); n < 2 || strings.Count(inspect, "running") != 2 {
		t.Fatalf("buildx inspect: want two running nodes:\n%s", inspect)
	}
	mustContain(t, "buildx inspect", inspect, amd.addr, arm.addr, "linux/amd64*", "linux/arm64*")

	ref := reg.Host + "/lade/multinode:v1"
	out := buildx("--builder", "multi", "build", "--progress", "plain", "--provenance=false",
		"--platform", "linux/amd64,linux/arm64", "--tag", ref, "--push", ctx)
	if n := strings.Count(out, "exporting with lade"); n != 2 {
		t.Fatalf("buildx build: %d exports by lade, want one per node:\n%s", n, out)
	}

	raw := skopeo(t, "inspect", "--tls-verify=false", "--raw", "docker://"+ref)
	var idx ocispec.Index
	if err := json.Unmarshal([]byte(raw), &idx); err != nil {
		t.Fatal(err)
	}
	var plats []string
	for _, m := range idx.Manifests {
		if m.Platform != nil {
			plats = append(plats, m.Platform.OS+"/"+m.Platform.Architecture)
		}
	}
	if fmt.Sprint(plats) != "[linux/amd64 linux/arm64]" {
		t.Fatalf("pushed index platforms %v, want [linux/amd64 linux/arm64]:\n%s", plats, raw)
	}
	for _, arch := range []string{"amd64", "arm64"} {
		var cfg ocispec.Image
		c := skopeo(t, "inspect", "--tls-verify=false", "--override-arch", arch, "--config", "--raw", "docker://"+ref)
		if err := json.Unmarshal([]byte(c), &cfg); err != nil || cfg.Architecture != arch || cfg.OS != "linux" {
			t.Fatalf("%s manifest's config: %v\n%s", arch, err, c)
		}
	}

	dir := filepath.Join(t.TempDir(), "amd64")
	skopeo(t, "copy", "--src-tls-verify=false", "--override-arch", "amd64", "docker://"+ref, "oci:"+dir+":v1")
	if got := runImage(t, dir, "v1"); strings.TrimSpace(got) != "amd64" {
		t.Fatalf("amd64 image printed %q, want amd64", got)
	}
}
